package echo

import (
	"errors"
	"net"
	"time"
)

// serveTCP accepts raw TCP echo connections on ln until ln is closed.
func (s *Server) serveTCP(ln net.Listener) {
	var backoff time.Duration
	for {
		conn, err := ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// Likely out of file descriptors: back off as net/http does
			// rather than spin.
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			s.opts.Logger.Debug("tcp accept", "err", err, "retry_in", backoff)
			time.Sleep(backoff)
			continue
		}
		backoff = 0
		s.tcpConns.Add(1)
		if !s.tunnels.add(conn) {
			conn.Close()
			continue
		}
		go func() {
			defer s.tunnels.remove(conn)
			defer conn.Close()
			echoConn(conn)
		}()
	}
}
