//! A minimal MCP client over the wire (streamable HTTP, protocol 2026-07-28: stateless, no
//! handshake, the routing headers `Mcp-Method` / `Mcp-Name` and the per-request `_meta`), for
//! tests and benchmarks that check exactly what crosses it. The stock-client test uses the
//! official Python SDK instead.

use serde_json::{Value, json};

pub const PROTOCOL_VERSION: &str = "2026-07-28";

#[derive(Debug, Clone)]
pub struct McpClient {
    pub url: String,
    pub http: reqwest::Client,
}

impl McpClient {
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            http: reqwest::Client::new(),
        }
    }

    /// POSTs one JSON-RPC request (`body` with `method` and `params`) with the routing headers.
    pub async fn post(&self, token: Option<&str>, body: &Value) -> reqwest::Response {
        let mut req = self
            .http
            .post(&self.url)
            .header("accept", "application/json, text/event-stream")
            .header("mcp-protocol-version", PROTOCOL_VERSION)
            .header("mcp-method", body["method"].as_str().unwrap_or_default())
            .json(body);
        if let Some(name) = body["params"]["name"].as_str() {
            req = req.header("mcp-name", name);
        }
        if let Some(token) = token {
            req = req.bearer_auth(token);
        }
        req.send().await.expect("the MCP gateway answers")
    }

    /// One request with the client's `_meta`; the JSON-RPC answer (status 200 asserted).
    pub async fn rpc(&self, token: Option<&str>, method: &str, mut params: Value) -> Value {
        params["_meta"] = json!({
            "io.modelcontextprotocol/protocolVersion": PROTOCOL_VERSION,
            "io.modelcontextprotocol/clientInfo": {"name": "cynode-tests", "version": "1"},
            "io.modelcontextprotocol/clientCapabilities": {},
        });
        let resp = self
            .post(
                token,
                &json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}),
            )
            .await;
        let status = resp.status();
        let body = resp.text().await.expect("answer body");
        assert_eq!(status, 200, "{method}: {body}");
        serde_json::from_str(&body).expect("a JSON-RPC answer")
    }

    /// `tools/call`: the tool's envelope (`structuredContent`), checked to agree with `isError`.
    pub async fn call(&self, token: Option<&str>, tool: &str, arguments: Value) -> Value {
        let answer = self
            .rpc(
                token,
                "tools/call",
                json!({"name": tool, "arguments": arguments}),
            )
            .await;
        let result = &answer["result"];
        assert!(result.is_object(), "tools/call {tool}: {answer}");
        let envelope = result["structuredContent"].clone();
        assert_eq!(
            result["isError"].as_bool().unwrap_or(false),
            envelope["status"] == "error",
            "{answer}"
        );
        envelope
    }

    /// The names `tools/list` gives `token`.
    pub async fn tool_names(&self, token: &str) -> Vec<String> {
        let answer = self.rpc(Some(token), "tools/list", json!({})).await;
        answer["result"]["tools"]
            .as_array()
            .unwrap_or_else(|| panic!("{answer}"))
            .iter()
            .map(|t| t["name"].as_str().unwrap_or_default().to_owned())
            .collect()
    }
}
