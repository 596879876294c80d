"""Python client of SeedBaseline, the seed paper's contract as published.

Kept only as the yardstick for gas and privacy: forecasts go on chain as the plaintext string
"lower,upper" in watts, exactly as in the paper's Table I.
"""

from __future__ import annotations

from eth_account.signers.local import LocalAccount

from sim.chain.artifacts import load_artifact
from sim.chain.connection import Chain
from sim.chain.units import lambda_from_chain, lambda_to_chain, price_from_chain, price_to_chain

CONTRACT_NAME = "SeedBaseline"


class SeedBaselineClient:
    """One deployed SeedBaseline (one bus) and the calls of Algorithm 1."""

    def __init__(self, chain: Chain, address: str) -> None:
        self.chain = chain
        self.web3_contract = chain.w3.eth.contract(
            address=address, abi=load_artifact(CONTRACT_NAME)["abi"]
        )
        self.address = self.web3_contract.address

    @classmethod
    def deploy(cls, chain: Chain, deployer: LocalAccount) -> SeedBaselineClient:
        art = load_artifact(CONTRACT_NAME)
        factory = chain.w3.eth.contract(abi=art["abi"], bytecode=art["bytecode"])
        return cls(chain, chain.deploy("baseline.deploy", deployer, factory).address)

    def _transact(self, account: LocalAccount, name: str, *args, round_: int | None = None):
        fn = getattr(self.web3_contract.functions, name)(*args)
        return self.chain.transact(f"baseline.{name}", account, fn, round_)

    def _call(self, name: str, *args):
        return self.chain.call(
            f"baseline.{name}", getattr(self.web3_contract.functions, name)(*args)
        )

    def claim_dso(self, account: LocalAccount) -> None:
        self._transact(account, "claimDSO", account.address)

    def claim_user(self, account: LocalAccount, user: str) -> None:
        self._transact(account, "claimUser", user)

    def submit_price(
        self, dso: LocalAccount, p_high: float, p_low: float, round_: int | None = None
    ) -> None:
        """Post the band in $/kWh (on chain: micro-$/kWh, upper first as in the paper)."""
        self._transact(
            dso,
            "submitPrice",
            price_to_chain(p_high),
            price_to_chain(p_low),
            round_=round_,
        )

    def get_price(self) -> tuple[float, float]:
        """(p_high, p_low) in $/kWh."""
        upper, lower = self._call("getPrice")
        return price_from_chain(upper), price_from_chain(lower)

    def submit_range(
        self, home: LocalAccount, lower_w: int, upper_w: int, round_: int | None = None
    ) -> None:
        """The paper's plaintext submission: the string "lower,upper" (W)."""
        self._transact(home, "submitRange", f"{int(lower_w)},{int(upper_w)}", round_=round_)

    def get_agg(self, dso: LocalAccount, round_: int | None = None) -> tuple[int, int]:
        """Sum the submissions on chain (a transaction, as in the paper): (lower, upper) in W."""
        receipt = self._transact(dso, "getAgg", round_=round_)
        event = self.web3_contract.events.Aggregated().process_receipt(receipt)[0]
        return int(event["args"]["lowerAgg"]), int(event["args"]["upperAgg"])

    def submit_lambda(self, dso: LocalAccount, lam: float, round_: int | None = None) -> None:
        self._transact(dso, "submitLambda", lambda_to_chain(lam), round_=round_)

    def get_lambda(self) -> float:
        return lambda_from_chain(self._call("getLambda"))

    def clear(self, dso: LocalAccount, round_: int | None = None) -> None:
        """Algorithm 1 step 8: clearPrice, clearRange, clearLambda."""
        for name in ("clearPrice", "clearRange", "clearLambda"):
            self._transact(dso, name, round_=round_)
