"""The REST API for services (/api/v1/): thin DRF views over services and selectors."""
