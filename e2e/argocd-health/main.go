// Command argocd-health runs an Argo CD resource health check (health.lua) against the cases of
// its health_test.yaml, the way Argo CD's own test runner and controller do: gopher-lua (the VM
// Argo CD embeds), the resource as the global `obj`, and the returned table read as
// {status, message}. Argo CD opens only package, base, table and a "safe" os subset for
// customizations; this opens package, base and table (health.lua needs no os), so a script
// that passes here needs nothing Argo CD does not give it (util/lua/lua.go runLua, where a
// customization from argocd-cm runs without the open libs; its one-second limit is kept too).
//
// Usage: argocd-health <dir containing health.lua and health_test.yaml>
// Exit status 1 on any mismatch, 2 on a broken test file.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"time"

	lua "github.com/yuin/gopher-lua"
	"sigs.k8s.io/yaml"
)

// The health codes Argo CD accepts from a script (pkg/apis/application/v1alpha1 HealthStatusCode).
var codes = map[string]bool{"Healthy": true, "Progressing": true, "Degraded": true, "Suspended": true,
	"Missing": true, "Unknown": true}

type health struct {
	Status  string `json:"status"`
	Message string `json:"message"`
}

type testCase struct {
	HealthStatus health `json:"healthStatus"`
	InputPath    string `json:"inputPath"`
}

type testFile struct {
	Tests []testCase `json:"tests"`
}

// decode turns a JSON value into a Lua value as Argo CD's decodeValue does: objects and arrays
// become tables (arrays 1-based), numbers LNumber, null nil.
func decode(l *lua.LState, value interface{}) lua.LValue {
	switch v := value.(type) {
	case map[string]interface{}:
		t := l.NewTable()
		for key, item := range v {
			t.RawSetString(key, decode(l, item))
		}
		return t
	case []interface{}:
		t := l.NewTable()
		for i, item := range v {
			t.RawSetInt(i+1, decode(l, item))
		}
		return t
	case float64:
		return lua.LNumber(v)
	case string:
		return lua.LString(v)
	case bool:
		return lua.LBool(v)
	case nil:
		return lua.LNil
	}
	panic(fmt.Sprintf("unexpected JSON value %T", value))
}

func run(script string, object map[string]interface{}) (health, error) {
	l := lua.NewState(lua.Options{SkipOpenLibs: true})
	defer l.Close()
	for _, lib := range []struct {
		name string
		open lua.LGFunction
	}{{lua.LoadLibName, lua.OpenPackage}, {lua.BaseLibName, lua.OpenBase}, {lua.TabLibName, lua.OpenTable}} {
		if err := l.CallByParam(lua.P{Fn: l.NewFunction(lib.open), NRet: 0, Protect: true}, lua.LString(lib.name)); err != nil {
			return health{}, err
		}
	}
	// Argo CD gives a script one second.
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	l.SetContext(ctx)
	l.SetGlobal("obj", decode(l, object))
	if err := l.DoString(script); err != nil {
		return health{}, err
	}
	table, ok := l.Get(-1).(*lua.LTable)
	if !ok {
		return health{}, fmt.Errorf("health.lua returned %s, want a table with status and message", l.Get(-1).Type())
	}
	got := health{Status: lua.LVAsString(table.RawGetString("status")), Message: lua.LVAsString(table.RawGetString("message"))}
	if !codes[got.Status] {
		return health{}, fmt.Errorf("health.lua returned status %q, which Argo CD does not accept", got.Status)
	}
	return got, nil
}

func readYAML(path string, into interface{}) error {
	raw, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	body, err := yaml.YAMLToJSON(raw)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return json.Unmarshal(body, into)
}

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: argocd-health <dir with health.lua and health_test.yaml>")
		os.Exit(2)
	}
	dir := os.Args[1]
	script, err := os.ReadFile(filepath.Join(dir, "health.lua"))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	var tests testFile
	if err := readYAML(filepath.Join(dir, "health_test.yaml"), &tests); err != nil || len(tests.Tests) == 0 {
		fmt.Fprintf(os.Stderr, "health_test.yaml: no tests read (%v)\n", err)
		os.Exit(2)
	}
	failed := 0
	for _, tc := range tests.Tests {
		var object map[string]interface{}
		if err := readYAML(filepath.Join(dir, tc.InputPath), &object); err != nil {
			fmt.Fprintf(os.Stderr, "%s: %v\n", tc.InputPath, err)
			os.Exit(2)
		}
		got, err := run(string(script), object)
		switch {
		case err != nil:
			failed++
			fmt.Printf("FAIL %s: %v\n", tc.InputPath, err)
		case got != tc.HealthStatus:
			failed++
			fmt.Printf("FAIL %s: got %s %q, want %s %q\n", tc.InputPath, got.Status, got.Message,
				tc.HealthStatus.Status, tc.HealthStatus.Message)
		default:
			fmt.Printf("ok   %s: %s %q\n", tc.InputPath, got.Status, got.Message)
		}
	}
	fmt.Printf("%d/%d cases passed\n", len(tests.Tests)-failed, len(tests.Tests))
	if failed > 0 {
		os.Exit(1)
	}
}
