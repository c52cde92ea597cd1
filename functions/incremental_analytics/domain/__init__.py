"""The pure core: rules, events, matching, replay and period evaluation. No AWS, no environment."""
