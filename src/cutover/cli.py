"""Command line entry point (filled in below)."""
import click

@click.group()
def main() -> None:
    """cutover"""
