package kube

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"

	"sigs.k8s.io/yaml"
)

// kubeconfig is the part of a kubeconfig file Load reads.
type kubeconfig struct {
	CurrentContext string `json:"current-context"`
	Clusters       []struct {
		Name    string `json:"name"`
		Cluster struct {
			Server                   string `json:"server"`
			CertificateAuthority     string `json:"certificate-authority"`
			CertificateAuthorityData string `json:"certificate-authority-data"`
			InsecureSkipTLSVerify    bool   `json:"insecure-skip-tls-verify"`
			TLSServerName            string `json:"tls-server-name"`
		} `json:"cluster"`
	} `json:"clusters"`
	Users []struct {
		Name string `json:"name"`
		User struct {
			ClientCertificate     string `json:"client-certificate"`
			ClientCertificateData string `json:"client-certificate-data"`
			ClientKey             string `json:"client-key"`
			ClientKeyData         string `json:"client-key-data"`
			Token                 string `json:"token"`
			TokenFile             string `json:"tokenFile"`
			Exec                  any    `json:"exec"`
			AuthProvider          any    `json:"auth-provider"`
		} `json:"user"`
	} `json:"users"`
	Contexts []struct {
		Name    string `json:"name"`
		Context struct {
			Cluster string `json:"cluster"`
			User    string `json:"user"`
		} `json:"context"`
	} `json:"contexts"`
}

// saDir holds the in-cluster service account's token and CA.
const saDir = "/var/run/secrets/kubernetes.io/serviceaccount"

// Load returns a client for the current context of the kubeconfig at
// path; path "" is the in-cluster service account (KUBERNETES_SERVICE_HOST
// and the mounted token and CA). Exec and auth-provider users are refused:
// the server runs no helper programs.
func Load(path string) (*Client, error) {
	if path == "" {
		return inCluster()
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading kubeconfig %q: %w", path, err)
	}
	var kc kubeconfig
	// Read leniently: kubeconfigs carry fields this client has no use
	// for (preferences, extensions); the fields used are checked below.
	if err := yaml.Unmarshal(raw, &kc); err != nil {
		return nil, fmt.Errorf("parsing kubeconfig %q: %w", path, err)
	}
	c, err := kc.client(filepath.Dir(path))
	if err != nil {
		return nil, fmt.Errorf("kubeconfig %q: %w", path, err)
	}
	return c, nil
}

func (kc *kubeconfig) client(dir string) (*Client, error) {
	ctxName := kc.CurrentContext
	if ctxName == "" && len(kc.Contexts) == 1 {
		ctxName = kc.Contexts[0].Name
	}
	var clusterName, userName string
	found := false
	for _, c := range kc.Contexts {
		if c.Name == ctxName {
			clusterName, userName, found = c.Context.Cluster, c.Context.User, true
		}
	}
	if !found {
		return nil, fmt.Errorf("no context %q", ctxName)
	}
	tlsCfg := &tls.Config{MinVersion: tls.VersionTLS12}
	c := &Client{}
	found = false
	for _, cl := range kc.Clusters {
		if cl.Name != clusterName {
			continue
		}
		found = true
		c.Server = cl.Cluster.Server
		tlsCfg.ServerName = cl.Cluster.TLSServerName
		tlsCfg.InsecureSkipVerify = cl.Cluster.InsecureSkipTLSVerify
		ca, err := dataOrFile(cl.Cluster.CertificateAuthorityData, cl.Cluster.CertificateAuthority, dir)
		if err != nil {
			return nil, fmt.Errorf("cluster %q CA: %w", clusterName, err)
		}
		if ca != nil {
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(ca) {
				return nil, fmt.Errorf("cluster %q: no PEM certificate in its CA", clusterName)
			}
			tlsCfg.RootCAs = pool
		}
	}
	if !found || c.Server == "" {
		return nil, fmt.Errorf("no cluster %q with a server", clusterName)
	}
	for _, u := range kc.Users {
		if u.Name != userName {
			continue
		}
		if u.User.Exec != nil || u.User.AuthProvider != nil {
			return nil, fmt.Errorf("user %q authenticates with a helper program (exec or auth-provider), which is not supported: use a client certificate or a token", userName)
		}
		cert, err := dataOrFile(u.User.ClientCertificateData, u.User.ClientCertificate, dir)
		if err != nil {
			return nil, fmt.Errorf("user %q certificate: %w", userName, err)
		}
		key, err := dataOrFile(u.User.ClientKeyData, u.User.ClientKey, dir)
		if err != nil {
			return nil, fmt.Errorf("user %q key: %w", userName, err)
		}
		if cert != nil || key != nil {
			pair, err := tls.X509KeyPair(cert, key)
			if err != nil {
				return nil, fmt.Errorf("user %q client certificate: %w", userName, err)
			}
			tlsCfg.Certificates = []tls.Certificate{pair}
		}
		c.token = u.User.Token
		if u.User.TokenFile != "" {
			b, err := os.ReadFile(resolve(u.User.TokenFile, dir))
			if err != nil {
				return nil, fmt.Errorf("user %q token file: %w", userName, err)
			}
			c.token = strings.TrimSpace(string(b))
		}
	}
	c.http = &http.Client{Transport: &http.Transport{TLSClientConfig: tlsCfg, Proxy: http.ProxyFromEnvironment}, Timeout: defaultTimeout}
	return c, nil
}

func inCluster() (*Client, error) {
	host, port := os.Getenv("KUBERNETES_SERVICE_HOST"), os.Getenv("KUBERNETES_SERVICE_PORT")
	if host == "" || port == "" {
		return nil, errors.New("no kubeconfig given and not running in a cluster (KUBERNETES_SERVICE_HOST unset)")
	}
	token, err := os.ReadFile(filepath.Join(saDir, "token"))
	if err != nil {
		return nil, fmt.Errorf("reading the service account token: %w", err)
	}
	ca, err := os.ReadFile(filepath.Join(saDir, "ca.crt"))
	if err != nil {
		return nil, fmt.Errorf("reading the cluster CA: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(ca) {
		return nil, errors.New("no PEM certificate in the service account's ca.crt")
	}
	if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	return &Client{Server: "https://" + host + ":" + port, token: strings.TrimSpace(string(token)),
		http: &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}},
			Timeout: defaultTimeout}}, nil
}

// dataOrFile is base64 data when given, else the file (relative to dir),
// else nil.
func dataOrFile(data, file, dir string) ([]byte, error) {
	if data != "" {
		b, err := base64.StdEncoding.DecodeString(data)
		if err != nil {
			return nil, fmt.Errorf("decoding base64 data: %w", err)
		}
		return b, nil
	}
	if file == "" {
		return nil, nil
	}
	return os.ReadFile(resolve(file, dir))
}

func resolve(file, dir string) string {
	if filepath.IsAbs(file) {
		return file
	}
	return filepath.Join(dir, file)
}
