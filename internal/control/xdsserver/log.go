package xdsserver

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/envoyproxy/go-control-plane/pkg/log"
)

// slogAdapter writes go-control-plane's printf-style logs to a slog.Logger,
// formatting only the records the handler keeps.
type slogAdapter struct{ l *slog.Logger }

var _ log.Logger = slogAdapter{}

func (a slogAdapter) logf(level slog.Level, format string, args []any) {
	ctx := context.Background()
	if !a.l.Enabled(ctx, level) {
		return
	}
	a.l.Log(ctx, level, fmt.Sprintf(format, args...))
}

func (a slogAdapter) Debugf(format string, args ...any) { a.logf(slog.LevelDebug, format, args) }

// Infof logs at debug level: go-control-plane reports routine per-request
// events (stale nonces, new subscriptions) at info.
func (a slogAdapter) Infof(format string, args ...any)  { a.logf(slog.LevelDebug, format, args) }
func (a slogAdapter) Warnf(format string, args ...any)  { a.logf(slog.LevelWarn, format, args) }
func (a slogAdapter) Errorf(format string, args ...any) { a.logf(slog.LevelError, format, args) }
