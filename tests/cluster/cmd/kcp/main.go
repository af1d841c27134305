// Command kcp is a multi-call binary bundling a real Kubernetes control plane
// for local tests: embedded etcd, kube-apiserver, kube-controller-manager and
// kubectl, all compiled from the upstream Go modules pinned in ../../go.mod.
//
// Usage:
//
//	kcp etcd --data-dir DIR [--client-port 12379] [--peer-port 12380]
//	kcp kube-apiserver [kube-apiserver flags...]
//	kcp kube-controller-manager [kube-controller-manager flags...]
//	kcp kubectl [kubectl args...]
//	kcp certs --dir DIR --server https://127.0.0.1:16443
//	kcp version
//
// The subcommand may also be selected by the name the binary is invoked as
// (e.g. a symlink called "kubectl").
package main

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	_ "time/tzdata" // for CronJob time zone support, as upstream main packages do

	etcdversion "go.etcd.io/etcd/api/v3/version"
	_ "k8s.io/client-go/plugin/pkg/client/auth" // kubectl: client auth plugins
	"k8s.io/component-base/cli"
	"k8s.io/component-base/logs"
	_ "k8s.io/component-base/logs/json/register"          // JSON log format registration
	_ "k8s.io/component-base/metrics/prometheus/clientgo" // prometheus client-go plugins
	_ "k8s.io/component-base/metrics/prometheus/version"  // version metric registration
	"k8s.io/component-base/version"
	kubectlcmd "k8s.io/kubectl/pkg/cmd"
	kubectlutil "k8s.io/kubectl/pkg/cmd/util"
	apiserverapp "k8s.io/kubernetes/cmd/kube-apiserver/app"
	kcmapp "k8s.io/kubernetes/cmd/kube-controller-manager/app"
)

const usage = `usage: kcp <command> [args...]

commands:
  etcd                     embedded etcd (127.0.0.1 only); see 'kcp etcd --help'
  kube-apiserver           upstream kube-apiserver
  kube-controller-manager  upstream kube-controller-manager
  kubectl                  upstream kubectl
  certs                    generate PKI + kubeconfigs; see 'kcp certs --help'
  version                  print compiled-in Kubernetes and etcd versions
`

func main() {
	sub := filepath.Base(os.Args[0])
	rest := os.Args[1:]
	if !known(sub) {
		if len(os.Args) < 2 {
			fmt.Fprint(os.Stderr, usage)
			os.Exit(2)
		}
		sub, rest = os.Args[1], os.Args[2:]
	}
	// Upstream commands read os.Args themselves (cobra, kubectl plugin
	// handling), so present them with the argv they would normally see.
	os.Args = append([]string{sub}, rest...)

	switch sub {
	case "etcd":
		os.Exit(runEtcd(rest))
	case "kube-apiserver":
		os.Exit(cli.Run(apiserverapp.NewAPIServerCommand()))
	case "kube-controller-manager":
		os.Exit(cli.Run(kcmapp.NewControllerManagerCommand()))
	case "kubectl":
		logs.GlogSetter(kubectlcmd.GetLogVerbosity(os.Args)) // nolint:errcheck
		command := kubectlcmd.NewDefaultKubectlCommand()
		if err := cli.RunNoErrOutput(command); err != nil {
			kubectlutil.CheckErr(err)
		}
	case "certs":
		os.Exit(runCerts(rest))
	case "version", "--version", "-version":
		v := version.Get()
		fmt.Printf("kubernetes: %s\n", v.GitVersion)
		fmt.Printf("etcd: v%s\n", etcdversion.Version)
		fmt.Printf("go: %s %s/%s\n", runtime.Version(), runtime.GOOS, runtime.GOARCH)
	case "help", "--help", "-h":
		fmt.Print(usage)
	default:
		fmt.Fprintf(os.Stderr, "kcp: unknown command %q\n\n%s", sub, usage)
		os.Exit(2)
	}
}

func known(name string) bool {
	switch name {
	case "etcd", "kube-apiserver", "kube-controller-manager", "kubectl":
		return true
	}
	return false
}
