// Package fuzzcampaign runs fuzz campaigns from the server: an application
// registers its HTTP API (the OpenAPI document's URL, the base URL requests
// go to, the hosts a campaign may reach and optionally a credential
// header), an operator asks for a campaign with a bounded budget, and a
// Runner (a Run(ctx) error task of the server) claims the campaign's job,
// runs internal/fuzz against the API, stores the report and notifies the
// application's owner of findings (a fuzz.findings event).
//
// What a caller of the API can and cannot make the server do: an admin
// registers an API; an operator starts campaigns against registered APIs
// only. Every request of a campaign, the document's fetch included, goes
// to a host the registration names (checked on each request; redirects are
// not followed), through the server's egress policy (loopback, private,
// link-local and metadata addresses refused after DNS unless the server's
// --allow-private-host names the host). A campaign is bounded in requests
// (Limits), time and rate. The credential is sealed with the server's key,
// never returned, logged or written into reports (curl lines name it
// $BULWARK_FUZZ_AUTH_1). The server is therefore no open proxy: it sends
// hostile requests only to hosts an admin registered, and only the
// findings (never the response bodies) come back to the caller.
package fuzzcampaign
