package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/trellis-mesh/trellis/internal/control/client"
	"github.com/trellis-mesh/trellis/internal/telemetry/tap"
)

type tapOptions struct {
	clientOptions
	q      client.TapQuery
	count  int
	output string
}

// errTapDone ends a tap after --count events.
var errTapDone = errors.New("tap: count reached")

func newTapCmd() *cobra.Command {
	o := &tapOptions{}
	cmd := &cobra.Command{
		Use:   "tap SERVICE|service/NS/NAME|dataplane/[NS/]NAME",
		Short: "Stream live requests from the proxies, through the control plane",
		Long: "Show requests as the proxies finish them: method, path, status, latency,\n" +
			"source and destination with their identities, response flags and reasons.\n" +
			"A service is tapped where it is served (inbound) and where it is called\n" +
			"(outbound); a dataplane, on every request it handles. At most --max-rps\n" +
			"events a second reach you; the proxies drop the rest and say how many.\n" +
			"--headers adds request and response headers, with authorization, cookies,\n" +
			"API keys and the Mesh's spec.tap.redactHeaders shown as REDACTED.\n" +
			"--body N adds the first N bytes (1..4096) of request and response bodies,\n" +
			"shown as sent: bodies are not redacted. Text is quoted, other bytes base64.\n" +
			"Ctrl-C ends the tap. See docs/tap.md.",
		Example: "  trellis tap reviews\n  trellis tap service/default/reviews --path /api --method GET\n" +
			"  trellis tap dataplane/frontend-1 --max-rps 10 --headers\n  trellis tap reviews --path /api --body 256\n" +
			"  trellis tap reviews -o json",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(o.output, "text", "json"); err != nil {
				return err
			}
			if o.q.MaxRPS < 0 || o.q.MaxRPS > 1000 {
				return fmt.Errorf("--max-rps %d: want 1..1000", o.q.MaxRPS)
			}
			if o.q.Body < 0 || o.q.Body > tap.MaxBody {
				return fmt.Errorf("--body %d: want 0 (off) or 1..%d bytes", o.q.Body, tap.MaxBody)
			}
			if o.count < 0 {
				return fmt.Errorf("--count %d: want 0 (no limit) or more", o.count)
			}
			o.q.Target = args[0]
			c, err := o.client()
			if err != nil {
				return err
			}
			out, errOut := cmd.OutOrStdout(), cmd.ErrOrStderr()
			p := &tapPrinter{out: out, errOut: errOut, json: o.output == "json", headers: o.q.Headers}
			seen := 0
			err = c.Tap(cmd.Context(), o.q, func(line []byte) error {
				isEvent, err := p.line(line)
				if err != nil {
					return err
				}
				if isEvent {
					if seen++; o.count > 0 && seen >= o.count {
						return errTapDone
					}
				}
				return nil
			})
			if errors.Is(err, errTapDone) {
				return nil
			}
			return err
		},
	}
	o.bind(cmd.Flags())
	f := cmd.Flags()
	f.StringVar(&o.q.Path, "path", "", "only requests whose path starts with this prefix")
	f.StringVar(&o.q.Method, "method", "", "only requests with this method")
	f.StringVar(&o.q.Authority, "authority", "", "only requests with this :authority (Host)")
	f.IntVar(&o.q.MaxRPS, "max-rps", 0, "at most this many events a second, 1..1000 (default 100)")
	f.BoolVar(&o.q.Headers, "headers", false, "show request and response headers (sensitive ones redacted)")
	f.IntVar(&o.q.Body, "body", 0, "show the first N bytes (1..4096) of request and response bodies, not redacted (0: off)")
	f.IntVar(&o.count, "count", 0, "stop after this many events (0: until Ctrl-C)")
	f.StringVarP(&o.output, "output", "o", "text", "output format: text or json (NDJSON, one object a line)")
	return cmd
}

// tapPrinter renders the lines of a tap stream.
type tapPrinter struct {
	out, errOut   io.Writer
	json, headers bool
	n             int // events printed
}

// tapLine is a line of the stream: an event, or a notice's message.
type tapLine struct {
	tap.Event
	Message string `json:"message"`
}

// line prints one line of the stream and reports whether it was an event.
func (p *tapPrinter) line(raw []byte) (bool, error) {
	var l tapLine
	if err := json.Unmarshal(raw, &l); err != nil {
		return false, fmt.Errorf("tap stream: %w", err)
	}
	if p.json {
		_, err := fmt.Fprintf(p.out, "%s\n", raw)
		return l.Type == "event", err
	}
	if l.Type != "event" {
		_, err := fmt.Fprintf(p.errOut, "# %s\n", l.Message)
		return false, err
	}
	p.n++
	_, err := io.WriteString(p.out, renderTapEvent(p.n, &l.Event, p.headers))
	return true, err
}

// renderTapEvent renders an event as a request line and a response line
// (linkerd tap's layout), with headers below each when captured.
func renderTapEvent(id int, e *tap.Event, headers bool) string {
	var b strings.Builder
	src := e.Source.Service
	if src == "" {
		src = e.Source.Address
	}
	if e.Source.Identity != "" {
		src += " (" + e.Source.Identity + ")"
	}
	dst := e.Destination.Service
	if dst == "" {
		dst = e.Destination.Cluster
	}
	if e.Destination.Address != "" {
		dst += "@" + e.Destination.Address
	}
	fmt.Fprintf(&b, "req id=%d dp=%s %s src=%s dst=%s tls=%t :method=%s :authority=%s :path=%s\n",
		id, e.Dataplane, e.Direction, src, dst, e.TLS, e.Method, e.Authority, e.Path)
	if headers {
		writeTapHeaders(&b, "  > ", e.RequestHeaders)
	}
	fmt.Fprintf(&b, "rsp id=%d :status=%d latency=%sms bytesIn=%d bytesOut=%d flags=%s", id, e.Status,
		strconv.FormatFloat(e.DurationMs, 'f', 3, 64), e.BytesIn, e.BytesOut, e.ResponseFlags)
	if e.GRPCStatus != nil {
		fmt.Fprintf(&b, " grpc-status=%d", *e.GRPCStatus)
	}
	if e.Reason != "" {
		fmt.Fprintf(&b, " reason=%s", e.Reason)
	}
	b.WriteByte('\n')
	if headers {
		writeTapHeaders(&b, "  < ", e.ResponseHeaders)
	}
	writeTapBody(&b, "  > ", e.RequestBody, e.RequestBodyEncoding, e.RequestBodyTruncated)
	writeTapBody(&b, "  < ", e.ResponseBody, e.ResponseBodyEncoding, e.ResponseBodyTruncated)
	return b.String()
}

func writeTapHeaders(b *strings.Builder, prefix string, h map[string]string) {
	for _, k := range slices.Sorted(maps.Keys(h)) {
		fmt.Fprintf(b, "%s%s: %s\n", prefix, k, h[k])
	}
}

// writeTapBody writes a captured body on one line: text quoted (so
// control characters cannot reach the terminal), other bytes as base64.
// A body that was not captured (nil) writes nothing.
func writeTapBody(b *strings.Builder, prefix string, body *string, encoding string, truncated bool) {
	if body == nil {
		return
	}
	if encoding == "" {
		fmt.Fprintf(b, "%sbody: %s", prefix, strconv.Quote(*body))
	} else {
		fmt.Fprintf(b, "%sbody (%s): %s", prefix, encoding, *body)
	}
	if truncated {
		b.WriteString(" (truncated)")
	}
	b.WriteByte('\n')
}
