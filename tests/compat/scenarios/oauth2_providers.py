"""The OAuth2 provider list PocketBase's dashboard reads, every provider on a collection through
auth-methods, the provider-name check on save, and Apple's client-secret generator's checks."""
from ._common import S

C = "/api/collections"
APPLE = "/api/settings/apple/generate-client-secret"

PKCE = [{"regex": r"(?<=state=)[A-Za-z0-9]+|(?<=code_challenge=)[A-Za-z0-9_-]+|^[A-Za-z0-9_-]{30,43}$",
         "reason": "PocketBase makes a random state and PKCE verifier/challenge for each answer"}]

NAMES = ["apple", "google", "microsoft", "yandex", "facebook", "instagram2", "github", "gitlab", "bitbucket",
         "gitee", "gitea", "discord", "twitter", "kakao", "vk", "linear", "notion", "monday", "lark", "box",
         "spotify", "trakt", "twitch", "patreon", "strava", "wakatime", "livechat", "mailcow", "planningcenter",
         "oidc", "oidc2", "oidc3"]


def provider(name):
    p = {"name": name, "clientId": f"cid-{name}", "clientSecret": "sec"}
    if name in ("oidc", "oidc2", "oidc3", "mailcow"):
        p.update(authURL="https://idp.example.com/auth", tokenURL="https://idp.example.com/token",
                 userInfoURL="https://idp.example.com/me")
    return p


SCENARIOS = [
    {
        "id": "oauth2_providers",
        "title": "GET /api/collections/meta/oauth2-providers (names, display names, logos), every provider "
                 "configured at once and listed by auth-methods, unknown names refused",
        "steps": [
            S("list as guest", "GET", f"{C}/meta/oauth2-providers", auth="guest", expect=401),
            S("list", "GET", f"{C}/meta/oauth2-providers", expect=200),
            S("every provider", "PATCH", f"{C}/users",
              body={"oauth2": {"enabled": True, "providers": [provider(n) for n in NAMES]}}, expect=200),
            dict(S("auth-methods with every provider", "GET", f"{C}/users/auth-methods", auth="guest",
                   expect=200), mask=PKCE),
            S("unknown provider", "PATCH", f"{C}/users", body={"oauth2": {"enabled": True, "providers": [
                {"name": "nope", "clientId": "x", "clientSecret": "y"}]}}, expect=400),
        ],
    },
    {
        "id": "apple_client_secret_checks",
        "title": "POST /api/settings/apple/generate-client-secret: auth, each field's check, a key that isn't one",
        "steps": [
            S("as guest", "POST", APPLE, auth="guest", body={}, expect=401),
            S("empty", "POST", APPLE, body={}, expect=400),
            S("lengths and bounds", "POST", APPLE, body={
                "clientId": "a", "teamId": "123", "keyId": "12345678901", "privateKey": "x", "duration": 99999999},
              expect=400),
            S("negative duration", "POST", APPLE, body={"duration": -1}, expect=400),
            S("not a key", "POST", APPLE, body={
                "clientId": "a", "teamId": "1234567890", "keyId": "1234567890",
                "privateKey": "-----BEGIN PRIVATE KEY----- abc -----END PRIVATE KEY-----", "duration": 5},
              expect=400,
              mask=[{"regex": r"(?<=Raw error: \n).*", "reason": "the key parser's own words differ"}]),
            S("malformed body", "POST", APPLE, raw="notjson", headers={"Content-Type": "application/json"},
              expect=400),
        ],
    },
]
