"""Each protocol answers in its own one form whatever the client's Accept says (Spring's clients ask
for application/vnd.spring-cloud.config-server.v2+json and read JSON): DRF's negotiation would say 406."""

from rest_framework.negotiation import DefaultContentNegotiation


class ProtocolForm(DefaultContentNegotiation):
    def select_renderer(self, request, renderers, format_suffix=None):
        renderer = renderers[0]
        return renderer, renderer.media_type
