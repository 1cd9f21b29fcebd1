package cli

import (
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/bulwark-sec/bulwark/internal/identity"
	"github.com/bulwark-sec/bulwark/internal/server"
)

// secretsOptions are the flags of `bulwark server` for the secret store,
// its workload listener and data governance.
type secretsOptions struct {
	kek, module, token, pinFile, keyLabel string
	createKey                             bool
	catalogue                             string
	listen, cert, key, ca                 string
	trustDomain, template                 string
}

func (o *secretsOptions) addFlags(cmd *cobra.Command) {
	f := cmd.Flags()
	f.StringVar(&o.kek, "secrets-kek", "file", "key-encryption key of the secret store: file (the --secret-key-file key) or pkcs11 (an AES key on a PKCS#11 token)")
	f.StringVar(&o.module, "secrets-pkcs11-module", "/usr/lib/softhsm/libsofthsm2.so", "PKCS#11 library of the token (--secrets-kek pkcs11)")
	f.StringVar(&o.token, "secrets-pkcs11-token", "", "label of the PKCS#11 token")
	f.StringVar(&o.pinFile, "secrets-pkcs11-pin-file", "", "file holding the token's user PIN (never a flag: it would show in the process list)")
	f.StringVar(&o.keyLabel, "secrets-pkcs11-key", "bulwark-kek", "label of the AES-256 key on the token")
	f.BoolVar(&o.createKey, "secrets-pkcs11-create-key", false, "generate the key on the token (sensitive, not extractable) when it is missing")
	f.StringVar(&o.catalogue, "governance-catalogue", "", "data governance catalogue (YAML): data classes, regulations, data stores, grants, node regions")
	f.StringVar(&o.listen, "secrets-workload-listen", "", "address of the workload secret API (mTLS with X.509-SVIDs; also Vault's KV v2 read path); empty: off")
	f.StringVar(&o.cert, "secrets-workload-cert", "", "TLS certificate of the workload secret API")
	f.StringVar(&o.key, "secrets-workload-key", "", "TLS private key of the workload secret API")
	f.StringVar(&o.ca, "secrets-workload-ca", "", "PEM bundle of the identity CA whose SVIDs the workload secret API accepts")
	f.StringVar(&o.trustDomain, "secrets-trust-domain", "", "SPIFFE trust domain of the workloads' identities (default: --trust-domain's, else bulwark.local)")
	f.StringVar(&o.template, "secrets-id-template", "", "SPIFFE ID template naming a running container (default: the identity service's, else "+identity.WorkloadTemplate+")")
}

func (o *secretsOptions) config() (server.SecretsConfig, error) {
	c := server.SecretsConfig{KEK: o.kek, Catalogue: o.catalogue, WorkloadListen: o.listen, WorkloadCert: o.cert,
		WorkloadKey: o.key, WorkloadCA: o.ca, TrustDomain: o.trustDomain, Template: o.template}
	if o.listen != "" {
		var missing []string
		for _, f := range []struct{ name, value string }{
			{"--secrets-workload-cert", o.cert}, {"--secrets-workload-key", o.key}, {"--secrets-workload-ca", o.ca},
		} {
			if f.value == "" {
				missing = append(missing, f.name)
			}
		}
		if len(missing) > 0 {
			return c, fmt.Errorf("--secrets-workload-listen needs %s", strings.Join(missing, ", "))
		}
	}
	if o.kek == "pkcs11" {
		if o.pinFile == "" || o.token == "" {
			return c, fmt.Errorf("--secrets-kek pkcs11 needs --secrets-pkcs11-token and --secrets-pkcs11-pin-file")
		}
		b, err := os.ReadFile(o.pinFile)
		if err != nil {
			return c, fmt.Errorf("reading the PKCS#11 PIN file: %w", err)
		}
		c.PKCS11.Module, c.PKCS11.TokenLabel, c.PKCS11.KeyLabel = o.module, o.token, o.keyLabel
		c.PKCS11.PIN, c.PKCS11.Create = strings.TrimSpace(string(b)), o.createKey
	}
	return c, nil
}
