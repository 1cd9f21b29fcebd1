package secrets

import "testing"

func TestScanTextFindsAWSKeyInAnHTTPBody(t *testing.T) {
	body := []byte(`{"error":"upstream failed","aws_access_key_id":"AKIAQ3EGRT5ZWXYZ7QPL"}`)
	got := ScanText("response body", body)
	if len(got) != 1 || got[0].Rule != "aws-access-key-id" || got[0].Path != "response body" || got[0].LayerIndex != -1 {
		t.Fatalf("ScanText = %+v, want one aws-access-key-id finding", got)
	}
	if got[0].Redacted == "AKIAQ3EGRT5ZWXYZ7QPL" {
		t.Fatal("finding holds the secret")
	}
	if got := ScanText("clean", []byte(`{"id":42,"name":"widget"}`)); len(got) != 0 {
		t.Fatalf("clean text: %+v", got)
	}
}
