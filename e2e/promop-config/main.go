// Command promop-config prints the prometheus.yml that the Prometheus Operator would write for a
// Prometheus resource, from the objects it would read in a cluster, through the operator's own
// code: the ServiceMonitor selection and validation of pkg/prometheus.ResourceSelector (label
// and namespace selectors, the checks that reject a monitor) and the configuration of
// pkg/prometheus.ConfigGenerator.GenerateServerConfiguration, as pkg/prometheus/server's
// Operator.sync calls them. kubeopt's e2e runs a real Prometheus with that file, so the chart's
// ServiceMonitor is scraped exactly as it would be under the Operator, not by a translation of ours.
//
// Usage: promop-config FILE... (multi-document YAML; "-" is stdin)
//
// The files hold exactly one Prometheus and any ServiceMonitor, Namespace, Secret and ConfigMap
// objects (the Namespaces answer serviceMonitorNamespaceSelector, the Secrets and ConfigMaps the
// monitors' credentials, as the operator's informers and asset store would). Fields the
// Operator's API types do not know are refused, so a typo in the chart fails here as it would
// fail the CRD's schema. A ServiceMonitor the Operator would reject is an error (exit status 1),
// with the Operator's own reason.
package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sort"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	"github.com/prometheus-operator/prometheus-operator/pkg/assets"
	"github.com/prometheus-operator/prometheus-operator/pkg/operator"
	prompkg "github.com/prometheus-operator/prometheus-operator/pkg/prometheus"
	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	corev1client "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
	"sigs.k8s.io/yaml"
)

// objects is what the operator's informers would hold.
type objects struct {
	prometheus      []*monitoringv1.Prometheus
	serviceMonitors []*monitoringv1.ServiceMonitor
	namespaces      []*corev1.Namespace
	secrets         map[string]*corev1.Secret    // namespace/name
	configMaps      map[string]*corev1.ConfigMap // namespace/name
}

func read(paths []string) (*objects, error) {
	all := &objects{secrets: map[string]*corev1.Secret{}, configMaps: map[string]*corev1.ConfigMap{}}
	for _, path := range paths {
		var in io.Reader = os.Stdin
		if path != "-" {
			f, err := os.Open(path)
			if err != nil {
				return nil, err
			}
			defer f.Close()
			in = f
		}
		docs := utilyaml.NewYAMLReader(bufio.NewReader(in))
		for n := 1; ; n++ {
			doc, err := docs.Read()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				return nil, fmt.Errorf("%s: document %d: %w", path, n, err)
			}
			if err := all.add(doc); err != nil {
				return nil, fmt.Errorf("%s: document %d: %w", path, n, err)
			}
		}
	}
	if len(all.prometheus) != 1 {
		return nil, fmt.Errorf("the files hold %d Prometheus objects: give exactly one (monitoring.coreos.com/v1 Prometheus)",
			len(all.prometheus))
	}
	return all, nil
}

func (o *objects) add(doc []byte) error {
	var meta metav1.TypeMeta
	if err := yaml.Unmarshal(doc, &meta); err != nil {
		return err
	}
	if meta.Kind == "" && meta.APIVersion == "" {
		return nil // an empty document (a template that rendered nothing)
	}
	gvk := schema.FromAPIVersionAndKind(meta.APIVersion, meta.Kind)
	strict := func(into interface{}) error {
		if err := yaml.UnmarshalStrict(doc, into); err != nil {
			return fmt.Errorf("%s: %w", gvk.Kind, err)
		}
		return nil
	}
	switch gvk {
	case monitoringv1.SchemeGroupVersion.WithKind(monitoringv1.PrometheusesKind):
		p := &monitoringv1.Prometheus{}
		if err := strict(p); err != nil {
			return err
		}
		o.prometheus = append(o.prometheus, p)
	case monitoringv1.SchemeGroupVersion.WithKind(monitoringv1.ServiceMonitorsKind):
		sm := &monitoringv1.ServiceMonitor{}
		if err := strict(sm); err != nil {
			return err
		}
		o.serviceMonitors = append(o.serviceMonitors, sm)
	case corev1.SchemeGroupVersion.WithKind("Namespace"):
		ns := &corev1.Namespace{}
		if err := strict(ns); err != nil {
			return err
		}
		o.namespaces = append(o.namespaces, ns)
	case corev1.SchemeGroupVersion.WithKind("Secret"):
		s := &corev1.Secret{}
		if err := strict(s); err != nil {
			return err
		}
		for k, v := range s.StringData { // as the API server stores it
			if s.Data == nil {
				s.Data = map[string][]byte{}
			}
			s.Data[k] = []byte(v)
		}
		o.secrets[s.Namespace+"/"+s.Name] = s
	case corev1.SchemeGroupVersion.WithKind("ConfigMap"):
		cm := &corev1.ConfigMap{}
		if err := strict(cm); err != nil {
			return err
		}
		o.configMaps[cm.Namespace+"/"+cm.Name] = cm
	default:
		return fmt.Errorf("kind %s is not read: give Prometheus, ServiceMonitor, Namespace, Secret or ConfigMap objects", gvk)
	}
	return nil
}

// The asset store reads Secrets and ConfigMaps through these getters (only Get); anything else
// the embedded nil interface would panic on, which the store never calls.
type secretsGetter struct{ o *objects }
type secrets struct {
	corev1client.SecretInterface
	o         *objects
	namespace string
}

func (g secretsGetter) Secrets(namespace string) corev1client.SecretInterface {
	return secrets{o: g.o, namespace: namespace}
}

func (s secrets) Get(_ context.Context, name string, _ metav1.GetOptions) (*corev1.Secret, error) {
	if found, ok := s.o.secrets[s.namespace+"/"+name]; ok {
		return found.DeepCopy(), nil
	}
	return nil, apierrors.NewNotFound(corev1.Resource("secrets"), name)
}

type configMapsGetter struct{ o *objects }
type configMaps struct {
	corev1client.ConfigMapInterface
	o         *objects
	namespace string
}

func (g configMapsGetter) ConfigMaps(namespace string) corev1client.ConfigMapInterface {
	return configMaps{o: g.o, namespace: namespace}
}

func (c configMaps) Get(_ context.Context, name string, _ metav1.GetOptions) (*corev1.ConfigMap, error) {
	if found, ok := c.o.configMaps[c.namespace+"/"+name]; ok {
		return found.DeepCopy(), nil
	}
	return nil, apierrors.NewNotFound(corev1.Resource("configmaps"), name)
}

// listServiceMonitors answers the selector as the operator's ServiceMonitor informers do.
func (o *objects) listServiceMonitors(namespace string, selector labels.Selector, appendFn cache.AppendFunc) error {
	for _, sm := range o.serviceMonitors {
		if sm.Namespace == namespace && selector.Matches(labels.Set(sm.Labels)) {
			appendFn(sm)
		}
	}
	return nil
}

func generate(o *objects, logger *slog.Logger) ([]byte, error) {
	ctx := context.Background()
	p := o.prometheus[0]
	store := assets.NewStoreBuilder(configMapsGetter{o}, secretsGetter{o})

	// The operator's namespace informer, filled instead of watched.
	namespaces := cache.NewSharedIndexInformer(&cache.ListWatch{}, &corev1.Namespace{}, 0, cache.Indexers{})
	for _, ns := range o.namespaces {
		if err := namespaces.GetStore().Add(ns); err != nil {
			return nil, err
		}
	}

	// As Operator.sync: EndpointSlice discovery where the Prometheus asks for it (the operator
	// passes the option when the cluster serves discovery.k8s.io/v1, which every supported one does).
	cg, err := prompkg.NewConfigGenerator(logger, p, prompkg.WithEndpointSliceSupport())
	if err != nil {
		return nil, err
	}
	events := record.NewFakeRecorder(100)
	selector, err := prompkg.NewResourceSelector(logger, p, store, namespaces,
		operator.NewMetrics(prometheus.NewRegistry()), events)
	if err != nil {
		return nil, err
	}
	selected, err := selector.SelectServiceMonitors(ctx, o.listServiceMonitors)
	if err != nil {
		return nil, fmt.Errorf("selecting ServiceMonitors failed: %w", err)
	}
	valid := selected.ValidResources()
	if len(valid) != len(selected) {
		var reasons []string
		for len(events.Events) > 0 {
			reasons = append(reasons, <-events.Events)
		}
		sort.Strings(reasons)
		return nil, fmt.Errorf("the Prometheus Operator rejects %d ServiceMonitor(s): %v", len(selected)-len(valid), reasons)
	}
	if len(valid) == 0 {
		return nil, fmt.Errorf("no ServiceMonitor matches Prometheus %s/%s's serviceMonitorSelector and "+
			"serviceMonitorNamespaceSelector (namespaces come from the Namespace objects given)", p.Namespace, p.Name)
	}
	for key := range valid {
		logger.Info("selected", "serviceMonitor", key)
	}
	return cg.GenerateServerConfiguration(p, valid, nil, nil, nil, store, nil, nil, nil, nil)
}

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: promop-config FILE... (Prometheus, ServiceMonitor, Namespace, Secret, ConfigMap; - is stdin)")
		os.Exit(2)
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	o, err := read(os.Args[1:])
	if err != nil {
		fmt.Fprintf(os.Stderr, "promop-config: %v\n", err)
		os.Exit(2)
	}
	conf, err := generate(o, logger)
	if err != nil {
		fmt.Fprintf(os.Stderr, "promop-config: %v\n", err)
		os.Exit(1)
	}
	os.Stdout.Write(conf)
}
