"""Search attributes the onboarding workflow upserts, so ops and reviewers list sessions
with one visibility query. They must be registered on the server before any workflow
upserts them: an unregistered attribute fails the workflow task in a silent retry loop."""

from temporalio.common import SearchAttributeKey

ONBOARDING_STATUS = SearchAttributeKey.for_keyword("OnboardingStatus")
RISK_TIER = SearchAttributeKey.for_keyword("RiskTier")
TENANT_ID = SearchAttributeKey.for_keyword("TenantId")
POLICY_VERSION = SearchAttributeKey.for_keyword("PolicyVersion")

ALL = (ONBOARDING_STATUS, RISK_TIER, TENANT_ID, POLICY_VERSION)
