"""The collector: validates telemetry from MQTT and stores it in InfluxDB, losing nothing."""
