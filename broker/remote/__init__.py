"""Remote resources: fetch a manifest's URLs safely at intake, and re-fetch those that ask for a sync."""
