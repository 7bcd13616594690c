package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sort"
)

// medianCmd prints the table of the median of several runs' JSON files:
// each figure is the median of that figure over the runs (so a row's
// figures may come from different runs).
func medianCmd(paths []string, stdout io.Writer) error {
	if len(paths) == 0 {
		return fmt.Errorf("-median wants the JSON files of the runs, e.g. -median run1.json run2.json run3.json")
	}
	var runs []any
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		var v any
		if err := json.Unmarshal(b, &v); err != nil {
			return fmt.Errorf("%s: %w", p, err)
		}
		runs = append(runs, v)
	}
	b, err := json.Marshal(medianOf(runs))
	if err != nil {
		return err
	}
	var r Report
	if err := json.Unmarshal(b, &r); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "Median of %d runs.\n\n", len(paths))
	r.writeTable(stdout)
	return nil
}

// medianOf merges decoded JSON values of the same shape: numbers become
// their median, objects and arrays merge member by member, and anything
// else is the first run's.
func medianOf(vs []any) any {
	switch first := vs[0].(type) {
	case float64:
		var nums []float64
		for _, v := range vs {
			if f, ok := v.(float64); ok {
				nums = append(nums, f)
			}
		}
		return median(nums)
	case map[string]any:
		out := map[string]any{}
		for k := range first {
			var members []any
			for _, v := range vs {
				if m, ok := v.(map[string]any); ok && m[k] != nil {
					members = append(members, m[k])
				}
			}
			if len(members) == 0 {
				out[k] = first[k]
				continue
			}
			out[k] = medianOf(members)
		}
		return out
	case []any:
		out := make([]any, len(first))
		for i := range first {
			var members []any
			for _, v := range vs {
				if a, ok := v.([]any); ok && i < len(a) {
					members = append(members, a[i])
				}
			}
			out[i] = medianOf(members)
		}
		return out
	}
	return vs[0]
}

// median of nums (the mean of the middle two for an even count).
func median(nums []float64) float64 {
	s := append([]float64(nil), nums...)
	sort.Float64s(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}
