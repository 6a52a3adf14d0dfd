"""The ICS subscription feed: the subscription and its secret URL, what a feed shows, its RFC 5545 text,
and building it after each change."""
