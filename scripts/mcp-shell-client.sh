# A POSIX shell MCP client for sandboxes (busybox wget is enough), included by the demo's and the
# tests' sandbox scripts: `mcp TOOL ARGUMENTS_JSON` makes one stateless MCP 2026-07-28
# `tools/call` to $CYNODE_MCP_URL and prints the JSON-RPC answer on one line. The job's node
# attaches the credentials; the sandbox has none.
mcp() {
  meta='"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientInfo":{"name":"sh","version":"1"},"io.modelcontextprotocol/clientCapabilities":{}}'
  body="{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{\"name\":\"$1\",\"arguments\":$2,$meta}}"
  wget -q -O - --header 'Content-Type: application/json' \
    --header 'Accept: application/json, text/event-stream' \
    --header 'MCP-Protocol-Version: 2026-07-28' --header 'Mcp-Method: tools/call' \
    --header "Mcp-Name: $1" --post-data "$body" "$CYNODE_MCP_URL"
  echo
}
