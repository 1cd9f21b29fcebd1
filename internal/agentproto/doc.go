// Package agentproto is the wire format between bulwark-agent and the
// server: a batch of runtime events (POST /api/v1/agent/events) and a
// heartbeat (POST /api/v1/agent/heartbeat), with the limits both sides
// hold to. It imports nothing of either side, so the agent carries no
// server code and the server no containerd client.
package agentproto
