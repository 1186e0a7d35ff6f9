"""A stock MCP client (the official `mcp` Python SDK) against CyNodeAI's MCP gateway.

Usage: mcp_client.py URL MODE CALLS_JSON, with the bearer token in $MCP_TOKEN. MODE is the SDK's
connect mode (`auto`: discover, 2026-07-28; `legacy`: the initialize handshake, 2025-11-25).
CALLS_JSON is a list of [tool, arguments]. Prints one JSON object: the tools the token may list,
and each call's structured result (or the SDK's error). The test that runs this asserts on it.
"""

import asyncio
import json
import os
import sys

from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client


async def main(url: str, mode: str, calls: list) -> dict:
    headers = {"Authorization": f"Bearer {os.environ['MCP_TOKEN']}"}
    transport = streamable_http_client(url, http_client=create_mcp_http_client(headers=headers))
    report = {"calls": []}
    async with Client(transport, mode=mode) as client:
        listed = await client.list_tools()
        report["tools"] = sorted(t.name for t in listed.tools)
        for name, arguments in calls:
            try:
                result = await client.call_tool(name, arguments)
                report["calls"].append(
                    {"tool": name, "is_error": bool(result.is_error), "structured": result.structured_content}
                )
            except Exception as e:  # the SDK's own refusal, reported for the test to judge
                report["calls"].append({"tool": name, "exception": repr(e)})
    return report


if __name__ == "__main__":
    print(json.dumps(asyncio.run(main(sys.argv[1], sys.argv[2], json.loads(sys.argv[3])))))
