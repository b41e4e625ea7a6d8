// Command kstatus computes the kstatus status of Kubernetes objects with
// sigs.k8s.io/cli-utils/pkg/kstatus/status.Compute, the library that kpt, Config Sync, Flux's
// health checks and `kubectl wait`-like tools use to decide whether a resource is reconciled.
// The e2e tests feed it ModelOptimizations read from a real API server, so the operator's
// conditions are checked against kstatus itself rather than against our reading of its rules.
//
// Input: one JSON object per line on stdin. Output: one JSON line per input line,
// {"status": "...", "message": "..."} (status is kstatus's: InProgress, Current, Failed,
// Terminating, NotFound, Unknown), in the same order. Exit status 2 on input that is not a
// JSON object or that status.Compute refuses.
package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
)

type result struct {
	Status  string `json:"status"`
	Message string `json:"message"`
}

func main() {
	in := bufio.NewScanner(os.Stdin)
	in.Buffer(make([]byte, 0, 1<<20), 64<<20)
	out := json.NewEncoder(os.Stdout)
	line := 0
	for in.Scan() {
		line++
		if len(in.Bytes()) == 0 {
			continue
		}
		// UnmarshalJSON decodes as client-go does (integers as int64), which kstatus expects.
		object := &unstructured.Unstructured{}
		if err := object.UnmarshalJSON(in.Bytes()); err != nil {
			fmt.Fprintf(os.Stderr, "kstatus: line %d is not a Kubernetes object: %v\n", line, err)
			os.Exit(2)
		}
		computed, err := status.Compute(object)
		if err != nil {
			fmt.Fprintf(os.Stderr, "kstatus: line %d: status.Compute: %v\n", line, err)
			os.Exit(2)
		}
		if err := out.Encode(result{Status: computed.Status.String(), Message: computed.Message}); err != nil {
			fmt.Fprintf(os.Stderr, "kstatus: writing line %d: %v\n", line, err)
			os.Exit(2)
		}
	}
	if err := in.Err(); err != nil {
		fmt.Fprintf(os.Stderr, "kstatus: reading stdin: %v\n", err)
		os.Exit(2)
	}
}
