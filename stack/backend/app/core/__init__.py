"""Settings and database plumbing shared by the API, the migrations and the tests."""
