"""The providers a deployment pays with, by the name webhooks name them with."""

from __future__ import annotations

from collections.abc import Iterator, Mapping

from core.payments import sandbox
from core.payments.provider import PaymentProvider
from core.settings import Settings

# The provider a checkout opens with (the only one so far).
DEFAULT: str = sandbox.NAME


class Providers(Mapping[str, PaymentProvider]):
    def __init__(self, providers: Mapping[str, PaymentProvider]) -> None:
        self._providers = dict(providers)

    @classmethod
    def from_settings(cls, settings: Settings) -> Providers:
        provider = sandbox.SandboxProvider(
            settings.pay_sandbox_url, settings.pay_secret, settings.pay_timeout
        )
        return cls({provider.name: provider})

    def __getitem__(self, name: str) -> PaymentProvider:
        return self._providers[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._providers)

    def __len__(self) -> int:
        return len(self._providers)

    async def close(self) -> None:
        for provider in self._providers.values():
            await provider.close()
