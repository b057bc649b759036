"""Local carriers on loopback for make run, the benchmarks and the tests: an SMSC (smsc.js, node-smpp) and an HTTP
carrier for the generic preset (http_carrier.py); `manage.py local_carriers` runs both."""
