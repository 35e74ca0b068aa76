//! Tracker announce/scrape requests and responses, both sides.
