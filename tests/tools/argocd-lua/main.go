// Command argocd-lua evaluates the project's Argo CD resource customizations with Argo CD's own
// code: the Lua runtime of util/lua (gopher-lua, Lua 5.1, in the sandbox Argo CD gives scripts
// from argocd-cm: base, table and a safe os library, no string library) and the argocd-cm
// parsing of util/settings. The scripts live in the upstream layout
//
//	DIR/resource_customizations/<group>/<kind>/health.lua, health_test.yaml, testdata/
//	DIR/resource_customizations/<group>/<kind>/actions/discovery.lua, action_test.yaml
//	DIR/resource_customizations/<group>/<kind>/actions/<action>/action.lua
//
// and reach Argo CD through DIR/argocd-cm.yaml and DIR/argocd-helm-values.yaml, which are
// generated from that layout.
//
//	argocd-lua generate DIR   writes DIR/argocd-cm.yaml and DIR/argocd-helm-values.yaml
//	argocd-lua test DIR       checks both files are current, loads argocd-cm.yaml the way Argo CD
//	                          does, and runs every health_test.yaml and action_test.yaml through
//	                          the scripts Argo CD found in it; exits 1 on any mismatch
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/argoproj/gitops-engine/pkg/health"
	jsonpatch "github.com/evanphx/json-patch"
	log "github.com/sirupsen/logrus"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/kubernetes/fake"
	"sigs.k8s.io/yaml"

	applicationpkg "github.com/argoproj/argo-cd/v3/pkg/apiclient/application"
	appv1 "github.com/argoproj/argo-cd/v3/pkg/apis/application/v1alpha1"
	"github.com/argoproj/argo-cd/v3/util/lua"
	"github.com/argoproj/argo-cd/v3/util/settings"
)

const (
	configMapFile  = "argocd-cm.yaml"
	helmValuesFile = "argocd-helm-values.yaml"
	layoutDir      = "resource_customizations"
	// The value the rotate action's timestamp is replaced with before comparing (as Argo CD's own
	// tests do for restartedAt); expected outputs carry it.
	timestampPlaceholder = "0001-01-01T00:00:00Z"
	rotateAnnotation     = "connectemail.dev/rotate"
)

func main() {
	if len(os.Args) != 3 || (os.Args[1] != "generate" && os.Args[1] != "test") {
		fmt.Fprintln(os.Stderr, "usage: argocd-lua generate|test DIR   (DIR: deploy/argocd)")
		os.Exit(2)
	}
	log.SetLevel(log.WarnLevel)
	dir := os.Args[2]
	kinds, err := loadLayout(dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	cm, values := renderConfigMap(kinds), renderHelmValues(kinds)
	if os.Args[1] == "generate" {
		for name, text := range map[string]string{configMapFile: cm, helmValuesFile: values} {
			if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
				fmt.Fprintln(os.Stderr, err)
				os.Exit(1)
			}
		}
		return
	}
	r := &report{}
	for name, want := range map[string]string{configMapFile: cm, helmValuesFile: values} {
		r.run("generated "+name, func() error {
			if got, err := os.ReadFile(filepath.Join(dir, name)); err != nil || string(got) != want {
				return fmt.Errorf("%s is not what the scripts under %s generate: regenerate with scripts/generate", name, layoutDir)
			}
			return nil
		})
	}
	var overrides map[string]appv1.ResourceOverride
	if r.run("argocd-cm read by Argo CD's settings manager", func() (err error) {
		overrides, err = loadArgoCDConfigMap(dir)
		return err
	}) {
		for _, k := range kinds {
			testKind(r, k, overrides)
		}
	}
	fmt.Printf("%d passed, %d failed\n", r.passed, r.failed)
	if r.failed > 0 {
		os.Exit(1)
	}
}

type report struct{ passed, failed int }

// run runs one test and prints one line for it.
func (r *report) run(name string, test func() error) bool {
	if err := test(); err != nil {
		r.failed++
		fmt.Printf("FAIL %s: %v\n", name, err)
		return false
	}
	r.passed++
	fmt.Printf("ok   %s\n", name)
	return true
}

// kind is one <group>/<kind> folder of the layout.
type kind struct {
	group, kind, dir string
	health           string // health.lua ("" if none)
	discovery        string // actions/discovery.lua ("" if no actions)
	actions          []action
}

type action struct{ name, script string }

func (k kind) key() string { return k.group + "/" + k.kind }

func loadLayout(dir string) ([]kind, error) {
	root := filepath.Join(dir, layoutDir)
	groups, err := os.ReadDir(root)
	if err != nil {
		return nil, err
	}
	var kinds []kind
	for _, g := range groups {
		entries, err := os.ReadDir(filepath.Join(root, g.Name()))
		if err != nil {
			return nil, err
		}
		for _, e := range entries {
			k := kind{group: g.Name(), kind: e.Name(), dir: filepath.Join(root, g.Name(), e.Name())}
			if k.health, err = readScript(filepath.Join(k.dir, "health.lua")); err != nil {
				return nil, err
			}
			if k.discovery, err = readScript(filepath.Join(k.dir, "actions", "discovery.lua")); err != nil {
				return nil, err
			}
			actionDirs, _ := os.ReadDir(filepath.Join(k.dir, "actions"))
			for _, a := range actionDirs {
				if !a.IsDir() || a.Name() == "testdata" {
					continue
				}
				script, err := readScript(filepath.Join(k.dir, "actions", a.Name(), "action.lua"))
				if err != nil {
					return nil, err
				}
				if script == "" {
					return nil, fmt.Errorf("%s has no action.lua", filepath.Join(k.dir, "actions", a.Name()))
				}
				k.actions = append(k.actions, action{a.Name(), script})
			}
			if (k.discovery == "") != (len(k.actions) == 0) {
				return nil, fmt.Errorf("%s: actions need both discovery.lua and at least one <action>/action.lua", k.dir)
			}
			kinds = append(kinds, k)
		}
	}
	sort.Slice(kinds, func(i, j int) bool { return kinds[i].key() < kinds[j].key() })
	return kinds, nil
}

// readScript returns a Lua file ("" when absent) after checking it can be written as a YAML
// literal block unchanged.
func readScript(path string) (string, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return "", nil
	} else if err != nil {
		return "", err
	}
	text := string(b)
	switch {
	case text == "" || !strings.HasSuffix(text, "\n") || strings.HasSuffix(text, "\n\n"):
		return "", fmt.Errorf("%s must end with exactly one newline", path)
	case strings.ContainsAny(text, "\t\r"):
		return "", fmt.Errorf("%s contains a tab or carriage return", path)
	case strings.HasPrefix(text, " ") || strings.HasPrefix(text, "\n"):
		return "", fmt.Errorf("%s must not start with a blank", path)
	}
	for i, line := range strings.Split(text, "\n") {
		if strings.HasSuffix(line, " ") {
			return "", fmt.Errorf("%s:%d has trailing spaces", path, i+1)
		}
	}
	return text, nil
}

// --- generated files ---

// configMapData returns the argocd-cm keys in a stable order: per kind, health then actions.
func configMapData(kinds []kind) [][2]string {
	var data [][2]string
	for _, k := range kinds {
		suffix := k.group + "_" + k.kind
		if k.health != "" {
			data = append(data, [2]string{"resource.customizations.health." + suffix, k.health})
		}
		if k.discovery != "" {
			var b strings.Builder
			b.WriteString("discovery.lua: |\n" + indent(k.discovery, 2) + "definitions:\n")
			for _, a := range k.actions {
				b.WriteString("  - name: " + a.name + "\n    action.lua: |\n" + indent(a.script, 6))
			}
			data = append(data, [2]string{"resource.customizations.actions." + suffix, b.String()})
		}
	}
	return data
}

func indent(text string, n int) string {
	pad := strings.Repeat(" ", n)
	lines := strings.SplitAfter(text, "\n")
	var b strings.Builder
	for _, line := range lines {
		if line != "\n" && line != "" {
			b.WriteString(pad)
		}
		b.WriteString(line)
	}
	return b.String()
}

func writeData(b *strings.Builder, data [][2]string, n int) {
	for _, kv := range data {
		b.WriteString(strings.Repeat(" ", n) + kv[0] + ": |\n" + indent(kv[1], n+2))
	}
}

const generatedBy = "# Generated by scripts/generate (`argocd-lua generate deploy/argocd`, tests/tools/argocd-lua) from\n" +
	"# deploy/argocd/resource_customizations; tests/argocd.rs fails when it is stale. Do not edit.\n"

func renderConfigMap(kinds []kind) string {
	var b strings.Builder
	b.WriteString(generatedBy)
	b.WriteString("# Argo CD health checks and actions for connectemail.dev, as keys of argocd-cm. Apply with\n" +
		"# `kubectl apply --server-side -k deploy/argocd` (merges these keys into an existing argocd-cm).\n")
	b.WriteString("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: argocd-cm\n  namespace: argocd\n" +
		"  labels:\n    app.kubernetes.io/name: argocd-cm\n    app.kubernetes.io/part-of: argocd\ndata:\n")
	writeData(&b, configMapData(kinds), 2)
	return b.String()
}

func renderHelmValues(kinds []kind) string {
	var b strings.Builder
	b.WriteString(generatedBy)
	b.WriteString("# The same argocd-cm keys as values for Argo CD's own Helm chart (argo-cd), which writes\n" +
		"# configs.cm into argocd-cm: helm upgrade ... -f deploy/argocd/argocd-helm-values.yaml\n")
	b.WriteString("configs:\n  cm:\n")
	writeData(&b, configMapData(kinds), 4)
	return b.String()
}

// --- Argo CD's view of argocd-cm ---

// loadArgoCDConfigMap reads argocd-cm.yaml, checks the Helm values carry the same data, and asks
// Argo CD's settings manager (over a fake API server holding just that ConfigMap and a Secret)
// for the resource overrides: it only finds a ConfigMap labelled app.kubernetes.io/part-of=argocd.
func loadArgoCDConfigMap(dir string) (map[string]appv1.ResourceOverride, error) {
	var cm corev1.ConfigMap
	if err := readYAML(filepath.Join(dir, configMapFile), &cm); err != nil {
		return nil, err
	}
	if cm.Name != "argocd-cm" || cm.Labels["app.kubernetes.io/name"] != "argocd-cm" {
		return nil, fmt.Errorf("%s: the ConfigMap must be named argocd-cm and labelled app.kubernetes.io/name: argocd-cm", configMapFile)
	}
	var values struct {
		Configs struct {
			CM map[string]string `json:"cm"`
		} `json:"configs"`
	}
	if err := readYAML(filepath.Join(dir, helmValuesFile), &values); err != nil {
		return nil, err
	}
	if !reflect.DeepEqual(values.Configs.CM, cm.Data) {
		return nil, fmt.Errorf("%s: configs.cm differs from the data of %s", helmValuesFile, configMapFile)
	}
	secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{
		Name: "argocd-secret", Namespace: cm.Namespace, Labels: map[string]string{"app.kubernetes.io/part-of": "argocd"},
	}, Data: map[string][]byte{"admin.password": []byte("test"), "server.secretkey": []byte("test")}}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	manager := settings.NewSettingsManager(ctx, fake.NewClientset(secret, &cm), cm.Namespace)
	if err := manager.ResyncInformers(); err != nil {
		return nil, err
	}
	return manager.GetResourceOverrides()
}

func readYAML(path string, into any) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if err := yaml.UnmarshalStrict(b, into); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}

func readObject(path string) (*unstructured.Unstructured, error) {
	obj := map[string]any{}
	if err := readYAML(path, &obj); err != nil {
		return nil, err
	}
	return &unstructured.Unstructured{Object: obj}, nil
}

// --- tests ---

type healthTests struct {
	Tests []struct {
		InputPath    string              `json:"inputPath"`
		HealthStatus health.HealthStatus `json:"healthStatus"`
	} `json:"tests"`
}

type actionTests struct {
	DiscoveryTests []struct {
		InputPath string                 `json:"inputPath"`
		Result    []appv1.ResourceAction `json:"result"`
	} `json:"discoveryTests"`
	ActionTests []actionTest `json:"actionTests"`
}

type actionTest struct {
	Action               string            `json:"action"`
	InputPath            string            `json:"inputPath"`
	ExpectedOutputPath   string            `json:"expectedOutputPath"`
	ExpectedErrorMessage string            `json:"expectedErrorMessage"`
	Parameters           map[string]string `json:"parameters"`
}

func testKind(r *report, k kind, overrides map[string]appv1.ResourceOverride) {
	if !r.run(k.key()+": argocd-cm holds the layout's scripts", func() error { return sameScripts(k, overrides) }) {
		return
	}
	if k.health != "" {
		var tests healthTests
		path := filepath.Join(k.dir, "health_test.yaml")
		if err := readYAML(path, &tests); err != nil || len(tests.Tests) == 0 {
			r.run(path, func() error { return fmt.Errorf("%v (or no tests)", err) })
		}
		for _, t := range tests.Tests {
			r.run(k.key()+" health "+t.InputPath, func() error { return testHealth(k, overrides, t.InputPath, t.HealthStatus) })
		}
	}
	if k.discovery != "" {
		var tests actionTests
		path := filepath.Join(k.dir, "actions", "action_test.yaml")
		if err := readYAML(path, &tests); err != nil || len(tests.DiscoveryTests) == 0 {
			r.run(path, func() error { return fmt.Errorf("%v (or no discoveryTests)", err) })
		}
		vm := lua.VM{ResourceOverrides: overrides} // as the API server runs actions: no open libraries
		for _, t := range tests.DiscoveryTests {
			r.run(k.key()+" discovery "+t.InputPath, func() error { return testDiscovery(k, vm, t.InputPath, t.Result) })
		}
		tested := map[string]bool{}
		for _, t := range tests.ActionTests {
			tested[t.Action] = true
			name := fmt.Sprintf("%s action %s %s", k.key(), t.Action, t.InputPath)
			if t.ExpectedErrorMessage != "" {
				name += " fails"
			}
			r.run(name, func() error { return testAction(k, vm, t) })
		}
		for _, a := range k.actions {
			if !tested[a.name] {
				r.run(k.key()+" action "+a.name, func() error { return fmt.Errorf("no actionTests entry in %s", path) })
			}
		}
	}
}

// sameScripts checks that Argo CD read from argocd-cm exactly the layout's scripts for the kind.
func sameScripts(k kind, overrides map[string]appv1.ResourceOverride) error {
	o, found := overrides[k.key()]
	switch {
	case !found:
		return fmt.Errorf("Argo CD found no resource override %q", k.key())
	case o.HealthLua != k.health:
		return errors.New("the health script Argo CD read differs from health.lua")
	case o.UseOpenLibs:
		return errors.New("useOpenLibs is set: Argo CD's default sandbox is what the scripts are tested in")
	case k.discovery == "":
		return nil
	}
	defs, err := o.GetActions()
	if err != nil {
		return err
	}
	same := defs.ActionDiscoveryLua == k.discovery && len(defs.Definitions) == len(k.actions)
	for i := 0; same && i < len(k.actions); i++ {
		same = defs.Definitions[i].Name == k.actions[i].name && defs.Definitions[i].ActionLua == k.actions[i].script
	}
	if !same {
		return errors.New("the actions Argo CD read differ from the layout's")
	}
	return nil
}

func readInput(k kind, path string) (*unstructured.Unstructured, error) {
	obj, err := readObject(path)
	if err == nil && (obj.GroupVersionKind().Group != k.group || obj.GetKind() != k.kind) {
		err = fmt.Errorf("%s is not a %s", path, k.key())
	}
	return obj, err
}

func testHealth(k kind, overrides map[string]appv1.ResourceOverride, input string, want health.HealthStatus) error {
	obj, err := readInput(k, filepath.Join(k.dir, input))
	if err != nil {
		return err
	}
	// The application controller's path: gitops-engine's GetResourceHealth with argocd-cm's overrides.
	got, err := health.GetResourceHealth(obj, lua.ResourceHealthOverrides(overrides))
	if err != nil {
		return err
	}
	if got == nil || *got != want {
		return fmt.Errorf("got %+v, want %+v", got, want)
	}
	return nil
}

func testDiscovery(k kind, vm lua.VM, input string, want []appv1.ResourceAction) error {
	obj, err := readInput(k, filepath.Join(k.dir, "actions", input))
	if err != nil {
		return err
	}
	scripts, err := vm.GetResourceActionDiscovery(obj)
	if err != nil {
		return err
	}
	got, err := vm.ExecuteResourceActionDiscovery(obj, scripts)
	if err != nil {
		return err
	}
	sortActions(got)
	sortActions(want)
	if !sameJSON(got, want) {
		return fmt.Errorf("got %s, want %s", toJSON(got), toJSON(want))
	}
	return nil
}

func testAction(k kind, vm lua.VM, t actionTest) error {
	source, err := readInput(k, filepath.Join(k.dir, "actions", t.InputPath))
	if err != nil {
		return err
	}
	live := source.DeepCopy()
	definition, err := vm.GetResourceAction(source, t.Action)
	if err != nil {
		return err
	}
	var params []*applicationpkg.ResourceActionParameters
	for key, value := range t.Parameters {
		params = append(params, &applicationpkg.ResourceActionParameters{Name: &key, Value: &value})
	}
	impacted, err := vm.ExecuteResourceAction(source, definition.ActionLua, params)
	if t.ExpectedErrorMessage != "" {
		if err == nil || err.Error() != t.ExpectedErrorMessage {
			return fmt.Errorf("got error %v, want %q", err, t.ExpectedErrorMessage)
		}
		return nil
	}
	if err != nil {
		return err
	}
	if len(impacted) != 1 || impacted[0].K8SOperation != lua.PatchOperation {
		return fmt.Errorf("%d impacted resources, want one patch of the resource itself", len(impacted))
	}
	result := impacted[0].UnstructuredObj
	normalizeTimestamp(result)
	want, err := readInput(k, filepath.Join(k.dir, "actions", t.ExpectedOutputPath))
	if err != nil {
		return err
	}
	if !sameJSON(result.Object, want.Object) {
		return fmt.Errorf("the result differs from %s:\n%s", t.ExpectedOutputPath, strings.Join(differences("", asJSON(result.Object), asJSON(want.Object)), "\n"))
	}
	// What the API server sends is a JSON merge patch from the live object to the result; these
	// actions only ever change annotations.
	patch, err := jsonpatch.CreateMergePatch(mustJSON(live.Object), mustJSON(result.Object))
	if err != nil {
		return err
	}
	var fields map[string]any
	if err := json.Unmarshal(patch, &fields); err != nil {
		return err
	}
	if meta, _ := fields["metadata"].(map[string]any); len(fields) != 1 || len(meta) != 1 || meta["annotations"] == nil {
		return fmt.Errorf("the merge patch %s changes more than annotations", patch)
	}
	return nil
}

var timestamp = regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$`)

// normalizeTimestamp replaces a rotate annotation written just now (UTC, RFC 3339) with the
// placeholder the expected outputs carry.
func normalizeTimestamp(obj *unstructured.Unstructured) {
	annotations := obj.GetAnnotations()
	value, ok := annotations[rotateAnnotation]
	if !ok || !timestamp.MatchString(value) {
		return
	}
	if t, err := time.Parse(time.RFC3339, value); err == nil && time.Since(t).Abs() < 10*time.Minute {
		annotations[rotateAnnotation] = timestampPlaceholder
		obj.SetAnnotations(annotations)
	}
}

func sortActions(actions []appv1.ResourceAction) {
	sort.Slice(actions, func(i, j int) bool { return actions[i].Name < actions[j].Name })
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

func toJSON(v any) string { return string(mustJSON(v)) }

// asJSON is v as encoding/json decodes it, so that Lua's numbers (float64) equal YAML's integers.
func asJSON(v any) any {
	var x any
	_ = json.Unmarshal(mustJSON(v), &x)
	return x
}

func sameJSON(a, b any) bool { return reflect.DeepEqual(asJSON(a), asJSON(b)) }

// differences lists where got and want differ, one "path: got ..., want ..." line each.
func differences(path string, got, want any) []string {
	g, gok := got.(map[string]any)
	w, wok := want.(map[string]any)
	if gok && wok {
		keys := map[string]bool{}
		for k := range g {
			keys[k] = true
		}
		for k := range w {
			keys[k] = true
		}
		sorted := make([]string, 0, len(keys))
		for k := range keys {
			sorted = append(sorted, k)
		}
		sort.Strings(sorted)
		var out []string
		for _, k := range sorted {
			out = append(out, differences(path+"."+k, g[k], w[k])...)
		}
		return out
	}
	if reflect.DeepEqual(got, want) {
		return nil
	}
	return []string{fmt.Sprintf("  %s: got %s, want %s", path, toJSON(got), toJSON(want))}
}
