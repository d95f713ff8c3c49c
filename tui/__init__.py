"""The Textual operator console (`cutover tui`). UI only: all logic lives in `cutover`."""
