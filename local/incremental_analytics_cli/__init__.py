"""The operator command line: run, demo, explain, trace, rules, outcomes and serve, on the embedded local AWS
(`incremental_analytics_local`, through its public names only) or on a deployed stack."""
