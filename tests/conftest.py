from tests.servers import influx_v1_url, mqtt_url, victoria_url

__all__ = ["influx_v1_url", "mqtt_url", "victoria_url"]
