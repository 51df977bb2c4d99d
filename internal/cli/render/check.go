package render

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// CheckStatus is the outcome of one `trellis check` check.
type CheckStatus string

// The check outcomes. Skipped means the check could not be made (the
// message says why); it is not a failure.
const (
	CheckOK      CheckStatus = "ok"
	CheckWarning CheckStatus = "warning"
	CheckFailed  CheckStatus = "failed"
	CheckSkipped CheckStatus = "skipped"
)

// CheckResult is one check's outcome, as printed and as -o json gives it.
type CheckResult struct {
	Category string      `json:"category"`
	Name     string      `json:"name"`
	Status   CheckStatus `json:"status"`
	Message  string      `json:"message"`
	// Hint says what to do about a warning or failure.
	Hint string `json:"hint,omitempty"`
}

// CheckReport is the -o json answer of `trellis check`.
type CheckReport struct {
	Checks []CheckResult `json:"checks"`
	// OK is false when a check failed (warnings leave it true).
	OK bool `json:"ok"`
}

// markers are the status columns of the table, all one width.
var markers = map[CheckStatus]string{
	CheckOK:      "[ok]  ",
	CheckWarning: "[warn]",
	CheckFailed:  "[FAIL]",
	CheckSkipped: "[skip]",
}

// Checks writes check results grouped by category (in the order the
// categories first appear), one line per check with its marker; a
// message of several lines and the hint of a warning or failure are
// indented under it. A summary line ends the output.
func Checks(w io.Writer, results []CheckResult) error {
	var cats []string
	byCat := map[string][]CheckResult{}
	for _, r := range results {
		if _, ok := byCat[r.Category]; !ok {
			cats = append(cats, r.Category)
		}
		byCat[r.Category] = append(byCat[r.Category], r)
	}
	var b strings.Builder
	indent := strings.Repeat(" ", len(markers[CheckOK])+1)
	count := map[CheckStatus]int{}
	for i, c := range cats {
		if i > 0 {
			b.WriteByte('\n')
		}
		fmt.Fprintf(&b, "%s\n%s\n", c, strings.Repeat("-", len(c)))
		for _, r := range byCat[c] {
			count[r.Status]++
			m, ok := markers[r.Status]
			if !ok {
				m = "[" + string(r.Status) + "]"
			}
			lines := strings.Split(r.Message, "\n")
			line := m + " " + r.Name
			if lines[0] != "" {
				line += ": " + lines[0]
			}
			b.WriteString(line + "\n")
			for _, l := range lines[1:] {
				b.WriteString(indent + "  " + l + "\n")
			}
			if r.Hint != "" && (r.Status == CheckWarning || r.Status == CheckFailed) {
				for j, l := range strings.Split(r.Hint, "\n") {
					if j == 0 {
						l = "hint: " + l
					} else {
						l = "      " + l
					}
					b.WriteString(indent + l + "\n")
				}
			}
		}
	}
	verdict := "all checks passed"
	switch {
	case count[CheckFailed] > 0:
		verdict = "some checks FAILED"
	case count[CheckWarning] > 0:
		verdict = "all checks passed, with warnings"
	}
	fmt.Fprintf(&b, "\n%s: %d ok, %d warning(s), %d failed, %d skipped\n", verdict,
		count[CheckOK], count[CheckWarning], count[CheckFailed], count[CheckSkipped])
	_, err := io.WriteString(w, b.String())
	return err
}

// statusDoc is the part of any kind's document ConditionProblems reads:
// conditions of its own, per parent (routes) or per ancestor (policies).
type statusDoc struct {
	Kind     string `json:"kind"`
	Metadata struct {
		Name      string `json:"name"`
		Namespace string `json:"namespace"`
	} `json:"metadata"`
	Status struct {
		Conditions []metav1.Condition `json:"conditions"`
		Parents    []struct {
			ParentRef struct {
				Name string `json:"name"`
			} `json:"parentRef"`
			Conditions []metav1.Condition `json:"conditions"`
		} `json:"parents"`
		Ancestors []struct {
			AncestorRef struct {
				Name string `json:"name"`
			} `json:"ancestorRef"`
			Conditions []metav1.Condition `json:"conditions"`
		} `json:"ancestors"`
	} `json:"status"`
}

// ConditionProblems describes, one line each, where the document of any
// kind has a condition typ that is present and not True: in its own
// status, or per parent (routes) or target (policies). A document without
// the condition has no problem.
func ConditionProblems(doc json.RawMessage, typ string) ([]string, error) {
	var d statusDoc
	if err := json.Unmarshal(doc, &d); err != nil {
		return nil, err
	}
	name := d.Kind + " " + d.Metadata.Name
	if d.Metadata.Namespace != "" {
		name = d.Kind + " " + d.Metadata.Namespace + "/" + d.Metadata.Name
	}
	var out []string
	report := func(where string, conds []metav1.Condition) {
		if c := find(conds, typ); c != nil && c.Status != metav1.ConditionTrue {
			out = append(out, fmt.Sprintf("%s%s: %s=%s (%s): %s", name, where, typ, c.Status, c.Reason, c.Message))
		}
	}
	report("", d.Status.Conditions)
	for _, p := range d.Status.Parents {
		report(" (parent "+p.ParentRef.Name+")", p.Conditions)
	}
	for _, a := range d.Status.Ancestors {
		report(" (target "+a.AncestorRef.Name+")", a.Conditions)
	}
	return out, nil
}
