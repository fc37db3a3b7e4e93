"""A small MCP server over stdio: the weather, made up."""

from fastmcp import FastMCP

mcp = FastMCP("weather")


@mcp.tool()
def forecast(city: str) -> str:
    """Tomorrow's weather in a city."""
    return f"Sunny in {city}, 21 degrees."


if __name__ == "__main__":
    mcp.run()
