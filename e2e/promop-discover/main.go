// Command promop-discover is Prometheus's own Kubernetes service discovery for a Prometheus
// built without it. Debian's prometheus package (the e2e Prometheus) is built without
// discovery/kubernetes ("field kubernetes_sd_configs not found in type config.ScrapeConfig"), so
// this runs that discovery (github.com/prometheus/prometheus/discovery/kubernetes, the code a
// Prometheus server runs for kubernetes_sd_configs, through its discovery manager) on each job of
// a prometheus.yml and writes what it finds, every target with all its __meta_kubernetes_*
// labels, as file_sd target files (<dir>/<job name with every character outside [A-Za-z0-9_.-]
// as _>.json), rewritten on every change. Pointing each job's file_sd_configs at its file gives
// Prometheus the same targets with the same labels before relabelling; the job's relabel_configs
// and honor_labels still do the rest.
//
// Its own module: Prometheus v0.305.0's discovery/kubernetes is built against client-go v0.32,
// which the Prometheus Operator's module (e2e/promop-config, client-go v0.33) cannot share.
//
// Usage: promop-discover PROMETHEUS_YML DIR (runs until SIGTERM or SIGINT)
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"regexp"
	"sort"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/discovery"
	"github.com/prometheus/prometheus/discovery/kubernetes"
	"github.com/prometheus/prometheus/discovery/targetgroup"
	"gopkg.in/yaml.v2"
)

// promConfig is the part of a prometheus.yml read here; kubernetes.SDConfig's own UnmarshalYAML
// applies Prometheus's defaults and validation to each entry.
type promConfig struct {
	ScrapeConfigs []struct {
		JobName    string                 `yaml:"job_name"`
		Kubernetes []*kubernetes.SDConfig `yaml:"kubernetes_sd_configs"`
	} `yaml:"scrape_configs"`
}

var unsafeName = regexp.MustCompile(`[^A-Za-z0-9_.-]`)

// fileSDGroup is one entry of a file_sd target file.
type fileSDGroup struct {
	Targets []string          `json:"targets"`
	Labels  map[string]string `json:"labels"`
}

// targets turns target groups into file_sd entries, one per target: file_sd has only group
// labels, and each discovered target has labels of its own.
func targets(groups []*targetgroup.Group) []fileSDGroup {
	out := []fileSDGroup{}
	for _, group := range groups {
		if group == nil {
			continue
		}
		for _, target := range group.Targets {
			labels := map[string]string{}
			for name, value := range group.Labels {
				labels[string(name)] = string(value)
			}
			for name, value := range target {
				labels[string(name)] = string(value)
			}
			address := labels[model.AddressLabel]
			delete(labels, model.AddressLabel)
			out = append(out, fileSDGroup{Targets: []string{address}, Labels: labels})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Targets[0] < out[j].Targets[0] })
	return out
}

func writeAtomically(path string, value interface{}) error {
	data, err := json.MarshalIndent(value, "", " ")
	if err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

func discover(configPath, dir string, logger *slog.Logger) error {
	text, err := os.ReadFile(configPath)
	if err != nil {
		return err
	}
	var cfg promConfig
	if err := yaml.Unmarshal(text, &cfg); err != nil {
		return fmt.Errorf("%s: %w", configPath, err)
	}
	jobs := map[string]discovery.Configs{}
	files := map[string]string{}
	for _, sc := range cfg.ScrapeConfigs {
		if len(sc.Kubernetes) == 0 {
			continue
		}
		for _, sd := range sc.Kubernetes {
			jobs[sc.JobName] = append(jobs[sc.JobName], sd)
		}
		files[sc.JobName] = filepath.Join(dir, unsafeName.ReplaceAllString(sc.JobName, "_")+".json")
		if err := writeAtomically(files[sc.JobName], []fileSDGroup{}); err != nil {
			return err
		}
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	registry := prometheus.NewRegistry()
	sdMetrics, err := discovery.CreateAndRegisterSDMetrics(registry)
	if err != nil {
		return err
	}
	manager := discovery.NewManager(ctx, logger, registry, sdMetrics, discovery.Updatert(200*time.Millisecond))
	if manager == nil {
		return fmt.Errorf("the discovery manager could not be created")
	}
	if err := manager.ApplyConfig(jobs); err != nil {
		return err
	}
	go func() { _ = manager.Run() }()
	for {
		select {
		case <-ctx.Done():
			return nil
		case update := <-manager.SyncCh():
			for job, groups := range update {
				path, ok := files[job]
				if !ok {
					continue
				}
				if err := writeAtomically(path, targets(groups)); err != nil {
					return err
				}
				logger.Info("targets written", "job", job, "file", path)
			}
		}
	}
}

func main() {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: promop-discover PROMETHEUS_YML DIR")
		os.Exit(2)
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	if err := discover(os.Args[1], os.Args[2], logger); err != nil {
		fmt.Fprintf(os.Stderr, "promop-discover: %v\n", err)
		os.Exit(1)
	}
}
