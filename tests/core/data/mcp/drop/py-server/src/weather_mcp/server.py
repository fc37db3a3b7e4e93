from fastmcp import FastMCP

mcp = FastMCP("weather")


def main() -> None:
    mcp.run()
