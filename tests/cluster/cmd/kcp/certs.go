package main

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"

	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// Files written by runCerts into --dir.
var pkiFiles = []string{
	"ca.crt", "ca.key",
	"apiserver.crt", "apiserver.key",
	"sa.key", "sa.pub",
	"admin.crt", "admin.key",
	"kube-controller-manager.crt", "kube-controller-manager.key",
}

// runCerts creates (if any file is missing) a CA, the apiserver serving
// certificate, the service-account signing key pair and client certificates
// for the admin and kube-controller-manager, then (always) writes
// admin.kubeconfig and kube-controller-manager.kubeconfig pointing at
// --server with all credentials embedded.
func runCerts(args []string) int {
	fs := flag.NewFlagSet("certs", flag.ContinueOnError)
	dir := fs.String("dir", "", "output directory (required)")
	server := fs.String("server", "https://127.0.0.1:16443", "apiserver URL for the kubeconfigs")
	force := fs.Bool("force", false, "regenerate everything even if present")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *dir == "" {
		fmt.Fprintln(os.Stderr, "certs: --dir is required")
		return 2
	}
	if err := os.MkdirAll(*dir, 0o700); err != nil {
		fmt.Fprintf(os.Stderr, "certs: %v\n", err)
		return 1
	}
	complete := true
	for _, f := range pkiFiles {
		if _, err := os.Stat(filepath.Join(*dir, f)); err != nil {
			complete = false
		}
	}
	if *force || !complete {
		if err := generatePKI(*dir); err != nil {
			fmt.Fprintf(os.Stderr, "certs: %v\n", err)
			return 1
		}
	}
	for _, user := range []string{"admin", "kube-controller-manager"} {
		if err := writeKubeconfig(*dir, user, *server); err != nil {
			fmt.Fprintf(os.Stderr, "certs: %v\n", err)
			return 1
		}
	}
	return 0
}

func generatePKI(dir string) error {
	now := time.Now().Add(-time.Hour) // tolerate small clock skew
	notAfter := now.AddDate(10, 0, 0)

	caKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return err
	}
	caTmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: "kcp-test-ca"},
		NotBefore:             now,
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, caKey.Public(), caKey)
	if err != nil {
		return err
	}
	caCert, err := x509.ParseCertificate(caDER)
	if err != nil {
		return err
	}
	if err := writeCertAndKey(dir, "ca", caDER, caKey); err != nil {
		return err
	}

	leaf := func(name string, subject pkix.Name, usage []x509.ExtKeyUsage, dns []string, ips []net.IP) error {
		key, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			return err
		}
		tmpl := &x509.Certificate{
			SerialNumber:          serial(),
			Subject:               subject,
			NotBefore:             now,
			NotAfter:              notAfter,
			KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
			ExtKeyUsage:           usage,
			BasicConstraintsValid: true,
			DNSNames:              dns,
			IPAddresses:           ips,
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, key.Public(), caKey)
		if err != nil {
			return err
		}
		return writeCertAndKey(dir, name, der, key)
	}

	if err := leaf("apiserver", pkix.Name{CommonName: "kube-apiserver"},
		[]x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		[]string{"localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc.cluster.local"},
		[]net.IP{net.ParseIP("127.0.0.1"), net.ParseIP("::1"), net.ParseIP("10.96.0.1")},
	); err != nil {
		return err
	}
	if err := leaf("admin", pkix.Name{CommonName: "admin", Organization: []string{"system:masters"}},
		[]x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}, nil, nil); err != nil {
		return err
	}
	if err := leaf("kube-controller-manager", pkix.Name{CommonName: "system:kube-controller-manager"},
		[]x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}, nil, nil); err != nil {
		return err
	}

	// Service-account token signing key pair.
	saKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return err
	}
	if err := writePEM(filepath.Join(dir, "sa.key"), "RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(saKey), 0o600); err != nil {
		return err
	}
	pub, err := x509.MarshalPKIXPublicKey(saKey.Public())
	if err != nil {
		return err
	}
	return writePEM(filepath.Join(dir, "sa.pub"), "PUBLIC KEY", pub, 0o644)
}

func serial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		panic(err)
	}
	return n.Add(n, big.NewInt(1))
}

func writeCertAndKey(dir, name string, der []byte, key crypto.Signer) error {
	rk, ok := key.(*rsa.PrivateKey)
	if !ok {
		return errors.New("unexpected key type")
	}
	if err := writePEM(filepath.Join(dir, name+".crt"), "CERTIFICATE", der, 0o644); err != nil {
		return err
	}
	return writePEM(filepath.Join(dir, name+".key"), "RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(rk), 0o600)
}

func writePEM(path, typ string, der []byte, mode os.FileMode) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), mode); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

func writeKubeconfig(dir, user, server string) error {
	read := func(f string) ([]byte, error) { return os.ReadFile(filepath.Join(dir, f)) }
	ca, err := read("ca.crt")
	if err != nil {
		return err
	}
	crt, err := read(user + ".crt")
	if err != nil {
		return err
	}
	key, err := read(user + ".key")
	if err != nil {
		return err
	}
	const name = "kcp"
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters[name] = &clientcmdapi.Cluster{Server: server, CertificateAuthorityData: ca}
	cfg.AuthInfos[user] = &clientcmdapi.AuthInfo{ClientCertificateData: crt, ClientKeyData: key}
	cfg.Contexts[name] = &clientcmdapi.Context{Cluster: name, AuthInfo: user, Namespace: "default"}
	cfg.CurrentContext = name
	out := filepath.Join(dir, user+".kubeconfig")
	tmp := out + ".tmp"
	os.Remove(tmp)
	if err := clientcmd.WriteToFile(*cfg, tmp); err != nil {
		return err
	}
	if err := os.Chmod(tmp, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, out)
}
