package secrets

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/bulwark-sec/bulwark/internal/layerfs"
)

// ruleCase is a realistic true positive and a near miss for one rule.
type ruleCase struct {
	rule string
	// hit is a file holding exactly one secret, which the rule reports at
	// line; miss holds look-alikes that no rule reports.
	hit  file
	line int
	miss file
}

func ruleCases(t testing.TB, f *fakes) []ruleCase {
	sa, _ := json.MarshalIndent(map[string]string{
		"type":           "service_account",
		"project_id":     "payments-prod",
		"private_key_id": f.str("0123456789abcdef", 40),
		"private_key":    f.edKey(t),
		"client_email":   "deployer@payments-prod.iam.gserviceaccount.com",
	}, "", "  ")
	saMiss, _ := json.MarshalIndent(map[string]string{
		"type":         "service_account",
		"project_id":   "payments-prod",
		"private_key":  "<paste the private key here>",
		"client_email": "deployer@payments-prod.iam.gserviceaccount.com",
	}, "", "  ")
	awsID := f.plant("AKIA" + f.str(upperB32, 16))
	awsSecret := f.plant(f.str(base64Set, 40))
	jwtHeader := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"RS256","typ":"JWT","kid":"` + f.str(alnum, 12) + `"}`))
	jwtPayload := base64.RawURLEncoding.EncodeToString([]byte(`{"sub":"svc-billing","aud":"api.internal","iat":1767225600}`))
	jwt := f.plant(jwtHeader + "." + jwtPayload + "." + f.str(urlSafe, 86))
	dockerAuth := f.plant(base64.StdEncoding.EncodeToString([]byte("ci-bot:" + f.password())))
	return []ruleCase{
		{
			rule: "gcp-service-account",
			hit:  file{"app/credentials/sa.json", string(sa)},
			line: 3, // keys sorted: client_email, private_key, ...
			miss: file{"app/credentials/sa-template.json", string(saMiss)},
		},
		{
			rule: "private-key",
			hit:  file{"root/.ssh/id_ecdsa", f.ecKey(t)},
			line: 1,
			miss: file{"opt/app/README.txt", "Put the key in key.pem, between the lines\n" +
				"-----BEGIN RSA PRIVATE KEY-----\n...\n-----END RSA PRIVATE KEY-----\n" +
				"or, for PKCS#8, -----BEGIN PRIVATE KEY----- MIIEvQIBADANBg...\n" +
				"A certificate is public:\n" + f.pem("CERTIFICATE", nil, 3) + f.pem("PUBLIC KEY", nil, 2)},
		},
		{
			rule: "aws-access-key-id",
			hit:  file{"app/deploy.sh", "#!/bin/sh\nexport AWS_ACCESS_KEY_ID=" + awsID + "\naws s3 sync dist s3://bucket\n"},
			line: 2,
			miss: file{"app/deploy-example.sh", "# from the AWS docs\nexport AWS_ACCESS_KEY_ID=AKIAIOSFODNN7EXAMPLE\n" +
				"hash=" + "xAKIA" + f.str(upperB32, 16) + "\n"},
		},
		{
			rule: "aws-secret-access-key",
			hit:  file{"root/.aws/credentials", "[default]\naws_access_key_id = AKIAIOSFODNN7EXAMPLE\naws_secret_access_key = " + awsSecret + "\n"},
			line: 3,
			miss: file{"root/.aws/credentials.example", "[default]\naws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY\n" +
				"[other]\naws_secret_access_key = " + strings.Repeat("x", 40) + "\n"},
		},
		{
			rule: "github-token",
			hit:  file{"app/scripts/release.py", "import os\nTOKEN = '" + f.github("ghp_") + "'\n"},
			line: 2,
			// right shape, wrong checksum
			miss: file{"app/scripts/release-example.py", "TOKEN = 'ghp_" + f.str(alnum, 36) + "'\nOTHER = 'ghp_xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx'\n"},
		},
		{
			rule: "gitlab-token",
			hit:  file{"app/ci/clone.sh", "git clone https://oauth2@gitlab.com/group/repo.git -c http.extraHeader='PRIVATE-TOKEN: " + f.plant("glpat-"+f.str(urlSafe, 20)) + "'\n"},
			line: 1,
			miss: file{"app/ci/clone-example.sh", "# PRIVATE-TOKEN: glpat-xxxxxxxxxxxxxxxxxxxx\n"},
		},
		{
			rule: "slack-token",
			hit:  file{"app/notify.js", "const slack = new WebClient('" + f.plant("xoxb-"+f.digits(12)+"-"+f.digits(13)+"-"+f.str(alnum, 24)) + "');\n"},
			line: 1,
			miss: file{"app/notify-example.js", "const slack = new WebClient('xoxb-your-bot-token');\n// xoxp-0000000000-0000000000-0000000000-000000\n"},
		},
		{
			rule: "slack-webhook",
			hit:  file{"app/alert.sh", "\ncurl -X POST https://hooks.slack.com/services/T" + f.str(upperB32, 8) + "/B" + f.str(upperB32, 10) + "/" + f.plant(f.str(alnum, 24)) + " -d @msg.json\n"},
			line: 2,
			miss: file{"app/alert-example.sh", "curl https://hooks.slack.com/services/T00000000/B00000000/XXXXXXXXXXXXXXXXXXXXXXXX\n"},
		},
		{
			rule: "stripe-live-key",
			hit:  file{"app/billing/settings.py", "STRIPE_KEY = \"" + f.plant("sk_live_"+f.str(alnum, 99)) + "\"\n"},
			line: 1,
			miss: file{"app/billing/settings_dev.py", "STRIPE_KEY = \"sk_test_" + f.str(alnum, 99) + "\"\n"},
		},
		{
			rule: "google-api-key",
			hit:  file{"app/static/maps.js", "\n\nconst key = \"" + f.plant("AIza"+f.str(urlSafe, 35)) + "\";\n"},
			line: 3,
			miss: file{"app/static/maps-example.js", "const key = \"AIzaxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\"; // AIzaSyShort\n"},
		},
		{
			rule: "npm-access-token",
			hit:  file{"app/publish.sh", "NODE_AUTH_TOKEN=" + f.plant("npm_"+f.str(alnum, 36)) + " npm publish\n"},
			line: 1,
			miss: file{"app/publish-example.sh", "npm_config_registry=https://registry.npmjs.org/ npm_config_cache_lock_stale=6000 npm publish\n"},
		},
		{
			rule: "npm-auth-token",
			hit:  file{"root/.npmrc", "registry=https://npm.internal/\n//npm.internal/:_authToken=" + f.plant(f.str("0123456789abcdef", 8)+"-"+f.str("0123456789abcdef", 4)+"-"+f.str("0123456789abcdef", 12)) + "\n"},
			line: 2,
			miss: file{"app/.npmrc", "//registry.npmjs.org/:_authToken=${NPM_TOKEN}\nalways-auth=true\n"},
		},
		{
			rule: "docker-config-auth",
			hit:  file{"root/.docker/config.json", `{"auths": {"registry.internal:5000": {"auth": "` + dockerAuth + `"}}}`},
			line: 1,
			miss: file{"home/ci/.docker/config.json", "{\n  \"auths\": {\"ghcr.io\": {}, \"quay.io\": {\"auth\": \"dXNlcm5hbWU=\"}},\n  \"credsStore\": \"desktop\"\n}\n"},
		},
		{
			rule: "url-basic-auth",
			hit:  file{"app/worker.py", "BROKER = 'amqp://billing:" + f.password() + "@mq.prod.internal:5672/billing'\n"},
			line: 1,
			miss: file{"app/worker-example.py", "BROKER = 'amqp://guest:guest@localhost:5672//'\n" +
				"DB = 'postgres://app:${DB_PASSWORD}@db/app'\n" +
				"DOC = 'https://user:password@example.com/'\n" +
				"# DB = 'postgres://app:" + f.str(alnum, 12) + "@db/app'\n"},
		},
		{
			rule: "jwt",
			hit:  file{"app/jobs/sync.sh", "curl -H 'Authorization: Bearer " + jwt + "' https://api.internal/sync\n"},
			line: 1,
			// jwt.io's example, and a dotted identifier
			miss: file{"app/jobs/sync-example.sh", "curl -H 'Authorization: Bearer eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIiwiaWF0IjoxNTE2MjM5MDIyfQ.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c'\n" +
				"echo eyJnotbase64atall.eyJnotbase64either.signaturesignature\n"},
		},
		{
			rule: "generic-password",
			hit:  file{"app/config/database.yaml", "production:\n  adapter: postgresql\n  username: billing\n  password: \"" + f.password() + "\"\n"},
			line: 4,
			miss: file{"app/config/database.example.yaml", "production:\n  password: changeme\n  password_file: /run/secrets/db\n" +
				"  secret: ${DB_SECRET}\n  api_key: YOUR_API_KEY\n  # password: " + f.str(alnum, 14) + "\n" +
				"  flags: --admin-password=" + f.str(alnum, 12) + "\n"},
		},
	}
}

// TestRules: each rule reports its true positive, at the right line, and
// no rule reports the near misses.
func TestRules(t *testing.T) {
	f := newFakes()
	cases := ruleCases(t, f)
	covered := map[string]bool{envRule.ID: true} // TestConfig
	for _, c := range cases {
		covered[c.rule] = true
		t.Run(c.rule, func(t *testing.T) {
			got := describe(scan(t, image(t, []file{c.hit}), nil, Options{}))
			assertLines(t, got, []string{fmt.Sprintf("%s /%s:%d %s", c.rule, c.hit.name, c.line, diffID(0))})
			if got := describe(scan(t, image(t, []file{c.miss}), nil, Options{})); len(got) > 0 {
				t.Errorf("near miss reported: %v", got)
			}
		})
	}
	for _, r := range Rules() {
		if !covered[r.ID] {
			t.Errorf("rule %s has no test case", r.ID)
		}
	}
}

// TestPrivateKeyKinds: every PEM flavour with a body is found; so are keys
// with escaped newlines, as in JSON and ENV values.
func TestPrivateKeyKinds(t *testing.T) {
	f := newFakes()
	keys := []string{
		f.pem("RSA PRIVATE KEY", nil, 20),
		f.pem("RSA PRIVATE KEY", map[string]string{"Proc-Type": "4,ENCRYPTED", "DEK-Info": "AES-128-CBC,3F17F5316E2BAC89" + f.str("0123456789ABCDEF", 16)}, 20),
		f.pem("DSA PRIVATE KEY", nil, 10),
		f.pem("OPENSSH PRIVATE KEY", nil, 6),
		f.pem("ENCRYPTED PRIVATE KEY", nil, 20),
		f.pem("PGP PRIVATE KEY BLOCK", map[string]string{"Version": "GnuPG v2"}, 20),
		f.edKey(t),
	}
	var files []file
	var want []string
	for i, k := range keys {
		name := fmt.Sprintf("keys/%d.pem", i)
		files = append(files, file{name, k})
		want = append(want, fmt.Sprintf("private-key /%s:1 %s", name, diffID(0)))
	}
	escaped := strings.ReplaceAll(f.ecKey(t), "\n", `\n`)
	files = append(files, file{"app/env.json", `{"TLS_KEY": "` + escaped + `"}`})
	want = append([]string{"private-key /app/env.json:1 " + diffID(0)}, want...)
	assertLines(t, describe(scan(t, image(t, files), nil, Options{})), want)
}

// TestDeletedSecret: a key added in layer 0 and deleted in layer 1, and a
// config replaced in layer 1, are still found, in layer 0, as deleted.
func TestDeletedSecret(t *testing.T) {
	f := newFakes()
	key := f.edKey(t)
	fsys := image(t,
		[]file{
			{"root/.ssh/id_ed25519", key},
			{"app/config.yaml", "password: " + f.password() + "\n"},
			{"app/keep.yaml", "password: " + f.password() + "\n"},
			{"app/cache/token.json", `{"api_key": "` + f.password() + `"}`},
		},
		[]file{
			{"root/.ssh/.wh.id_ed25519", ""},
			{"app/config.yaml", "password: ${DB_PASSWORD}\n"},
			{"app/cache/.wh..wh..opq", ""},
		},
	)
	got := scan(t, fsys, nil, Options{})
	assertLines(t, describe(got), []string{
		"generic-password /app/cache/token.json:1 sha256:layer0 deleted",
		"generic-password /app/config.yaml:1 sha256:layer0 deleted",
		"generic-password /app/keep.yaml:1 sha256:layer0",
		"private-key /root/.ssh/id_ed25519:1 sha256:layer0 deleted",
	})
	if got[3].LayerIndex != 0 || got[3].Severity != Critical || !strings.HasPrefix(got[3].Redacted, "MC4C") {
		t.Errorf("key finding = %+v", got[3])
	}
}

// TestSameSecretOncePerLayer: a secret repeated in a file is reported once;
// the same file in two layers is reported in each.
func TestSameSecretOncePerLayer(t *testing.T) {
	f := newFakes()
	tok := f.github("ghp_")
	body := "a=" + tok + "\nb=" + tok + "\nc=" + f.github("gho_") + "\n"
	fsys := image(t,
		[]file{{"app/tokens.txt", body}},
		[]file{{"app/tokens.txt", body}},
	)
	assertLines(t, describe(scan(t, fsys, nil, Options{})), []string{
		"github-token /app/tokens.txt:1 sha256:layer0 deleted",
		"github-token /app/tokens.txt:3 sha256:layer0 deleted",
		"github-token /app/tokens.txt:1 sha256:layer1",
		"github-token /app/tokens.txt:3 sha256:layer1",
	})
}

// TestOverlappingRulesReportOnce: the most specific rule reports a secret
// that several rules match.
func TestOverlappingRulesReportOnce(t *testing.T) {
	f := newFakes()
	tok := f.github("ghs_")
	fsys := image(t, []file{
		{"app/.env", "GIT_URL=https://x-access-token:" + tok + "@github.com/org/repo.git\nGITHUB_TOKEN=" + tok + "\n"},
	})
	assertLines(t, describe(scan(t, fsys, nil, Options{})), []string{
		"github-token /app/.env:1 sha256:layer0",
	})
}

// TestConfig: secrets in ENV, ARG, RUN build arguments and RUN commands.
func TestConfig(t *testing.T) {
	f := newFakes()
	ghp := f.github("ghp_")
	cfg := &v1.ConfigFile{
		Config: v1.Config{Env: []string{
			"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
			"POSTGRES_PASSWORD=" + f.password(),
			"GITHUB_TOKEN=" + ghp,
			"PASSWORD_FILE=/run/secrets/db",
			"TOKENIZERS_PARALLELISM=false",
			"API_KEY=changeme",
			"SECRET_KEY_BASE=$RAILS_SECRET",
			"AWS_ACCESS_KEY_ID=AKIAIOSFODNN7EXAMPLE",
			"GOOGLE_APPLICATION_CREDENTIALS=/var/run/gcp/key.json",
			"TOKEN_TTL_SECONDS=3600",
			"PGPASSWORD=" + f.password(),
			"ALSO_GITHUB_TOKEN=" + ghp,
		}},
		History: []v1.History{
			{CreatedBy: "/bin/sh -c #(nop) ADD file:0123456789abcdef in / "},
			{CreatedBy: `RUN /bin/sh -c curl -fsSL -H "Authorization: token ` + f.github("ghp_") + `" https://api.github.com/repos/org/private/tarball | tar xz # buildkit`, EmptyLayer: false},
			{CreatedBy: "ENV AWS_SECRET_ACCESS_KEY=" + f.plant(f.str(base64Set, 40)), EmptyLayer: true},
			{CreatedBy: "ARG DEPLOY_PASSWORD=" + f.password() + " DEPLOY_USER=ci", EmptyLayer: true},
			{CreatedBy: "RUN |2 NPM_TOKEN=" + f.plant("npm_"+f.str(alnum, 36)) + " REGISTRY_PASSWORD=" + f.password() + " /bin/sh -c npm ci && echo REGISTRY_PASSWORD=notreported # buildkit"},
			{CreatedBy: "RUN |1 SENTRY_TOKEN=$SENTRY_TOKEN /bin/sh -c make"},
			{CreatedBy: "/bin/sh -c #(nop)  ENV DB_PASSWORD=" + f.password()},
			{CreatedBy: "RUN /bin/sh -c set -eux; \\\n\tapt-get update; \\\n\tcurl -o /x https://deploy:" + f.password() + "@files.internal/x"},
		},
	}
	got := scan(t, image(t, []file{{"etc/hostname", "app\n"}}), cfg, Options{})
	assertLines(t, describe(got), []string{
		"secret-env-var ENV:2",
		"github-token ENV:3",
		"secret-env-var ENV:11",
		"github-token history[1]:1",
		"aws-secret-access-key history[2]:1",
		"secret-env-var history[3]:1",
		"npm-access-token history[4]:1",
		"secret-env-var history[4]:1",
		"secret-env-var history[6]:1",
		"url-basic-auth history[7]:3",
	})
	for _, f := range got {
		if f.Layer != "" || f.LayerIndex != -1 || f.Deleted {
			t.Errorf("config finding with a layer: %+v", f)
		}
	}
}

// TestNothingLeaks: no output form of the findings holds a planted secret,
// or any 8 characters of one.
func TestNothingLeaks(t *testing.T) {
	f := newFakes()
	var files []file
	for _, c := range ruleCases(t, f) {
		files = append(files, c.hit, c.miss)
	}
	cfg := &v1.ConfigFile{
		Config:  v1.Config{Env: []string{"DB_PASSWORD=" + f.password(), "GH=" + f.github("ghu_")}},
		History: []v1.History{{CreatedBy: "ENV AWS_SECRET_ACCESS_KEY=" + f.plant(f.str(base64Set, 40))}},
	}
	got := scan(t, image(t, files, []file{{"root/.docker/.wh.config.json", ""}}), cfg, Options{})
	if len(got) < len(Rules()) {
		t.Fatalf("only %d findings: %v", len(got), describe(got))
	}
	js, err := json.Marshal(got)
	if err != nil {
		t.Fatal(err)
	}
	outputs := map[string]string{"%+v": fmt.Sprintf("%+v", got), "%#v": fmt.Sprintf("%#v", got), "json": string(js)}
	for _, s := range f.planted {
		for name, out := range outputs {
			if strings.Contains(out, s) {
				t.Fatalf("%s output holds a planted secret", name)
			}
		}
		// a token's prefix is public: look for any 8 characters after it
		for _, p := range []string{"sk_live_", "rk_live_", "github_pat_", "glpat-", "xoxb-", "npm_", "ghp_", "gho_", "ghu_", "ghs_", "AKIA", "AIza", "eyJ"} {
			s = strings.TrimPrefix(s, p)
		}
		for i := 0; i+8 <= len(s); i++ {
			for name, out := range outputs {
				if strings.Contains(out, s[i:i+8]) {
					t.Fatalf("%s output holds %q of a planted secret", name, s[i:i+8])
				}
			}
		}
	}
}

func TestSkips(t *testing.T) {
	f := newFakes()
	tok := f.github("ghp_")
	big := strings.Repeat("filler line\n", 1000) + "token=" + tok + "\n"
	fsys := image(t, []file{
		{"usr/share/doc/tool/README", tok},
		{"usr/lib/python3.11/test/keycert.pem", f.ecKey(t)},
		{"usr/local/lib/python3.12/test/certdata/key.pem", f.ecKey(t)},
		{"app/node_modules/jws/test/fixtures/key.pem", f.ecKey(t)},
		{"app/node_modules/@scope/pkg/tests/key.pem", f.ecKey(t)},
		{"app/node_modules/pkg/README.md", tok},
		{"etc/ssl/certs/ca-certificates.crt", tok},
		{"app/fixtures/key.pem", f.ecKey(t)},
		{"app/bin/tool", "\x7fELF\x00\x00" + tok},
		{"app/big.txt", big},
		// scanned
		{"app/README.md", tok},
		{"app/test/key.pem", f.ecKey(t)},
	})
	got := scan(t, fsys, nil, Options{SkipPaths: []string{"/app/fixtures/"}, MaxFileSize: int64(len(big) - 1)})
	assertLines(t, describe(got), []string{
		"github-token /app/README.md:1 sha256:layer0",
		"private-key /app/test/key.pem:1 sha256:layer0",
	})
	if got := describe(scan(t, fsys, nil, Options{})); !slices.Contains(got, "github-token /app/big.txt:1001 sha256:layer0") {
		t.Errorf("default size limit skipped big.txt: %v", got)
	}
	if _, err := Scan(context.Background(), fsys, nil, Options{SkipPaths: []string{"/app/[x"}}); err == nil || !strings.Contains(err.Error(), `parsing skip path "/app/[x"`) {
		t.Errorf("bad glob: err = %v", err)
	}
}

func TestGlobs(t *testing.T) {
	g, err := compileGlobs([]string{"/usr/share/doc", "/usr/lib/python3*/test", "node_modules/**/test", "*.bak", "/opt/**/secret.txt"})
	if err != nil {
		t.Fatal(err)
	}
	for p, want := range map[string]bool{
		"/usr/share/doc/a/b":                true,
		"/usr/share/doc":                    true,
		"/usr/share/docs/a":                 false,
		"/usr/lib/python3.11/test/x.pem":    true,
		"/usr/lib/python3/test/x.pem":       true,
		"/usr/lib/python2.7/test/x.pem":     false,
		"/app/node_modules/a/test/k":        true,
		"/app/node_modules/a/b/c/test/k":    true,
		"/app/test/k":                       false,
		"/x/y.bak":                          true,
		"/opt/secret.txt":                   true,
		"/opt/a/b/secret.txt":               true,
		"/opt/a/b/secret.txt.orig":          false,
		"/usr/local/lib/python3.12/test/ok": false,
	} {
		if got := g.match(p); got != want {
			t.Errorf("match(%q) = %v, want %v", p, got, want)
		}
	}
}

func TestRedact(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"ghp_0123456789abcdefghijklmnopqrstuvwxyz", "ghp_************************************"},
		{"hunter22", "hu******"}, // short secrets keep a quarter
		{"abc", "***"},
		{"pässwörd-pässwörd", "p*ss*************"}, // only printable ASCII is kept
		{"\x00\x01\x02abcdefghijklmnop", "***a***************"},
		{strings.Repeat("k", 100), "kkkk" + strings.Repeat("*", 60)},
	} {
		if got := redact(c.in); got != c.want {
			t.Errorf("redact(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

// TestDirectorySource: a root filesystem directory is one layer without a
// diffID, and nothing in it is deleted.
func TestDirectorySource(t *testing.T) {
	f := newFakes()
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "app"), 0o755)
	if err := os.WriteFile(filepath.Join(dir, "app", ".env"), []byte("\nSTRIPE="+f.plant("rk_live_"+f.str(alnum, 40))+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	fsys, err := layerfs.FromDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer fsys.Close()
	got := scan(t, fsys, nil, Options{})
	if len(got) != 1 || got[0].Rule != "stripe-live-key" || got[0].Path != "/app/.env" || got[0].Line != 2 || got[0].Layer != "" || got[0].Deleted {
		t.Errorf("findings = %+v", got)
	}
}

// TestRulesAreDocumented: every rule is valid and has a row in
// docs/secrets.md.
func TestRulesAreDocumented(t *testing.T) {
	doc, err := os.ReadFile("../../docs/secrets.md")
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, r := range Rules() {
		if seen[r.ID] || r.Description == "" || !slices.Contains([]string{Critical, High, Medium}, r.Severity) || len(r.Keywords) == 0 {
			t.Errorf("bad rule %+v", r)
		}
		seen[r.ID] = true
		for _, k := range r.Keywords {
			if k != strings.ToLower(k) {
				t.Errorf("rule %s: keyword %q is not lowercase", r.ID, k)
			}
		}
		if row := fmt.Sprintf("| `%s` |", r.ID); !strings.Contains(string(doc), row) {
			t.Errorf("docs/secrets.md has no row %q", row)
		}
	}
}

func TestCancel(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	fsys := image(t, []file{{"a", "x"}})
	if _, err := Scan(ctx, fsys, nil, Options{}); err == nil {
		t.Error("no error from a cancelled scan")
	}
}
