package etcd

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"
)

// LeaseTTL is the lease of an elected leader, in seconds: a leader that
// stops refreshing it (crashed, partitioned) is replaced within this time.
const LeaseTTL = 10

// Leader is this process's leadership won by Elect. It lasts until Resign
// or until its lease is lost; singleton work runs while IsLeader and stops
// when Done closes.
type Leader struct {
	session  *concurrency.Session
	election *concurrency.Election

	resignOnce sync.Once
	resignErr  error
}

// Elect campaigns under <prefix>/leader/ with id (reported to observers as
// the leader's value) and blocks until this process is the leader or ctx
// ends. ctx bounds the campaign only; leadership then lasts until Resign or
// until the lease (LeaseTTL seconds) cannot be refreshed, or client closes.
func Elect(ctx context.Context, client *clientv3.Client, prefix, id string) (*Leader, error) {
	s, err := concurrency.NewSession(client, concurrency.WithTTL(LeaseTTL))
	if err != nil {
		return nil, fmt.Errorf("elect %q: session: %w", id, err)
	}
	e := concurrency.NewElection(s, strings.TrimRight(prefix, "/")+"/leader/")
	if err := e.Campaign(ctx, id); err != nil {
		s.Close()
		return nil, fmt.Errorf("elect %q: %w", id, err)
	}
	return &Leader{session: s, election: e}, nil
}

// IsLeader reports whether the leadership still holds (Done not closed).
// Leadership is lost when the lease lapses; someone deleting the leader key
// by hand is not noticed.
func (l *Leader) IsLeader() bool {
	select {
	case <-l.session.Done():
		return false
	default:
		return true
	}
}

// Done is closed when leadership ends: Resign, a lost lease, or the client
// closing.
func (l *Leader) Done() <-chan struct{} { return l.session.Done() }

// Resign gives up leadership so that another campaigner takes over at once,
// and revokes the lease. It waits at most LeaseTTL seconds for etcd; after
// that the lease expires on its own. Calling it again does nothing.
func (l *Leader) Resign() error {
	l.resignOnce.Do(func() {
		if !l.IsLeader() {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), LeaseTTL*time.Second)
		defer cancel()
		err := l.election.Resign(ctx)
		if cerr := l.session.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			l.resignErr = fmt.Errorf("resign: %w", err)
		}
	})
	return l.resignErr
}
