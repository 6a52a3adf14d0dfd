"""django-oauth-toolkit's validator, bound to our consumers: a client authenticates only while its consumer is not
revoked, and asks only for the scopes its clinic's admin gave it (by default, all of them)."""

from __future__ import annotations

from typing import Any

from oauth2_provider.oauth2_validators import OAuth2Validator

from fhir_api.models import Consumer


def _consumer_of(client: Any) -> Consumer | None:
    if client is None:
        return None
    return Consumer.objects.filter(application_id=client.pk).first()


class ConsumerValidator(OAuth2Validator):
    def authenticate_client(self, request: Any, *args: Any, **kwargs: Any) -> bool:
        if not super().authenticate_client(request, *args, **kwargs):
            return False
        consumer = _consumer_of(request.client)
        if consumer is None or consumer.revoked_at is not None:
            return False
        request.consumer = consumer
        return True

    def validate_scopes(
        self, client_id: str, scopes: list[str], client: Any, request: Any, *args: Any, **kw: Any
    ) -> bool:
        consumer = getattr(request, "consumer", None) or _consumer_of(client)
        return consumer is not None and set(scopes) <= set(consumer.scope_list)

    def get_default_scopes(self, client_id: str, request: Any, *args: Any, **kwargs: Any) -> list[str]:
        consumer = getattr(request, "consumer", None) or _consumer_of(request.client)
        return consumer.scope_list if consumer is not None else []
