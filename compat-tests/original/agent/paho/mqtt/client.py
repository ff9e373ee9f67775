"""Fake MQTT client: the trigger module connects to a broker that is not there."""


class Client:
    def __init__(self, *args, **kwargs):
        self.on_connect = None
        self.on_message = None

    def connect(self, *args, **kwargs):
        return 0

    def loop_start(self):
        pass

    def subscribe(self, *args, **kwargs):
        return (0, 0)

    def publish(self, *args, **kwargs):
        return None
