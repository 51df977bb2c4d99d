// Package file is a discovery source that reads Dataplanes from the YAML
// and JSON files of a directory, so instances that no Trellis proxy
// registers (or a static inventory) can be listed in files.
package file

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/trellis-mesh/trellis/api/v1alpha1"
	"github.com/trellis-mesh/trellis/internal/discovery"
)

// DefaultInterval is how often the directory is read.
const DefaultInterval = 2 * time.Second

// Source reads every *.yaml, *.yml and *.json file of Dir (not recursively)
// as a stream of Dataplane documents.
//
// A file that cannot be read or holds an invalid document is logged with
// the problem and keeps contributing what it held the last time it was
// good, so a half-saved edit never withdraws instances; a file that is
// removed withdraws its Dataplanes.
type Source struct {
	Dir      string
	Interval time.Duration // default DefaultInterval
	Log      *slog.Logger

	good map[string]fileState // per path: last good content
}

type fileState struct {
	raw []byte
	dps []*v1alpha1.Dataplane
}

// Name implements discovery.Source.
func (s *Source) Name() string { return "file:" + s.Dir }

// Run implements discovery.Source: it reads the directory at start and
// then every Interval, and sends the whole view when a file changed.
func (s *Source) Run(ctx context.Context, out chan<- discovery.Snapshot) error {
	if s.Log == nil {
		s.Log = slog.New(slog.DiscardHandler)
	}
	iv := s.Interval
	if iv <= 0 {
		iv = DefaultInterval
	}
	s.good = map[string]fileState{}
	tick := time.NewTicker(iv)
	defer tick.Stop()
	first := true
	for {
		changed, err := s.scan()
		if err != nil {
			s.Log.Error("reading the dataplanes directory failed", "dir", s.Dir, "error", err)
		} else if changed || first {
			first = false
			select {
			case out <- s.view():
			case <-ctx.Done():
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}

// scan reads the directory and reports whether the view changed.
func (s *Source) scan() (bool, error) {
	entries, err := os.ReadDir(s.Dir)
	if err != nil {
		return false, err
	}
	seen := map[string]bool{}
	changed := false
	for _, e := range entries {
		switch strings.ToLower(filepath.Ext(e.Name())) {
		case ".yaml", ".yml", ".json":
		default:
			continue
		}
		if e.IsDir() {
			continue
		}
		path := filepath.Join(s.Dir, e.Name())
		seen[path] = true
		raw, err := os.ReadFile(path)
		if err != nil {
			s.Log.Error("dataplane file unreadable; keeping what it held", "file", path, "error", err)
			continue
		}
		if prev, ok := s.good[path]; ok && bytes.Equal(prev.raw, raw) {
			continue
		}
		dps, err := parse(raw)
		if err != nil {
			s.Log.Error("dataplane file invalid; keeping what it held", "file", path, "error", err)
			continue
		}
		s.good[path] = fileState{raw: raw, dps: dps}
		changed = true
	}
	for path := range s.good {
		if !seen[path] {
			delete(s.good, path)
			changed = true
		}
	}
	return changed, nil
}

// parse decodes, defaults and validates every document of a file; all
// must be valid Dataplanes.
func parse(raw []byte) ([]*v1alpha1.Dataplane, error) {
	objs, err := v1alpha1.DecodeAll(bytes.NewReader(raw))
	if err != nil {
		return nil, err
	}
	var out []*v1alpha1.Dataplane
	for i, o := range objs {
		dp, ok := o.(*v1alpha1.Dataplane)
		if !ok {
			return nil, fmt.Errorf("document %d: kind %s, want Dataplane", i+1, v1alpha1.KindOf(o))
		}
		v1alpha1.Default(dp)
		if errs := v1alpha1.Validate(dp); len(errs) > 0 {
			return nil, fmt.Errorf("document %d (Dataplane %s): %w", i+1, dp.Name, errs.ToAggregate())
		}
		out = append(out, dp)
	}
	return out, nil
}

// view is the union of every file's last good Dataplanes; a name listed in
// two files is taken from the first file in name order.
func (s *Source) view() discovery.Snapshot {
	paths := make([]string, 0, len(s.good))
	for p := range s.good {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	snap := discovery.Snapshot{Source: s.Name()}
	names := map[string]string{}
	for _, p := range paths {
		for _, dp := range s.good[p].dps {
			key := v1alpha1.NamespaceOf(dp) + "/" + dp.Name
			if first, dup := names[key]; dup {
				s.Log.Error("dataplane listed twice; the first file wins", "dataplane", key, "first", first, "again", p)
				continue
			}
			names[key] = p
			snap.Dataplanes = append(snap.Dataplanes, dp)
		}
	}
	return snap
}
