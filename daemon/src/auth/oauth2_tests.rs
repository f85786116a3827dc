//! Each preset's mapping of its provider's user-info answer, against the
//! answer's documented shape (the fixtures follow each provider's API
//! reference), and the authorization URLs as PocketBase 0.40.6 builds
//! them.

use super::*;
use crate::auth::oauth2_presets::{preset, PRESETS, PROVIDERS_LIST};
use std::cell::RefCell;

/// Maps `raw` through the named preset; `extra` answers the follow-up
/// GETs (by URL) and records which URLs were asked.
fn mapped(
    name: &str,
    raw: Value,
    token: Value,
    extra: &[(&str, Value)],
) -> Result<AuthUser, LoginError> {
    let p = preset(name).unwrap();
    let asked = RefCell::new(Vec::new());
    let get = |url: &str| -> Result<Value, LoginError> {
        asked.borrow_mut().push(url.to_string());
        extra
            .iter()
            .find(|(u, _)| *u == url)
            .map(|(_, v)| v.clone())
            .ok_or_else(|| LoginError::User(format!("status 404 for {url}")))
    };
    map_user(p, p.user_info_url, raw, &token, &get)
}

fn ok(name: &str, raw: Value) -> AuthUser {
    mapped(name, raw, json!({}), &[]).unwrap()
}

/// (id, name, username, email, avatar)
fn fields(u: &AuthUser) -> (&str, &str, &str, &str, &str) {
    (&u.id, &u.name, &u.username, &u.email, &u.avatar_url)
}

#[test]
fn the_list_is_pocketbases() {
    let list: Vec<Value> = serde_json::from_str(PROVIDERS_LIST).unwrap();
    assert_eq!(list.len(), 32);
    assert_eq!(list.len(), PRESETS.len());
    for (item, p) in list.iter().zip(PRESETS) {
        assert_eq!(item["name"], p.name);
        assert_eq!(item["displayName"], p.display);
        assert!(
            item["logo"].as_str().unwrap().starts_with("<svg"),
            "{}",
            p.name
        );
        assert_eq!(item["logo"], super::super::oauth2_presets::logo(p.name));
        let keys: Vec<&String> = item.as_object().unwrap().keys().collect();
        assert_eq!(keys, ["displayName", "logo", "name"]);
    }
}

/// The authorization URL of a preset with client id `cid`, its state and
/// challenge blanked.
fn auth_url(name: &str, extra: Value) -> String {
    let mut cfg = json!({"name": name, "clientId": "cid", "clientSecret": "sec"});
    for (k, v) in extra.as_object().unwrap() {
        cfg[k] = v.clone();
    }
    let p = Provider::from_options(&json!({ "providers": [cfg] }), name).unwrap();
    let info = p.auth_info();
    let mut url = info["authURL"].as_str().unwrap().to_string();
    url = url.replace(info["state"].as_str().unwrap(), "S");
    let ch = info["codeChallenge"].as_str().unwrap();
    if !ch.is_empty() {
        url = url.replace(ch, "C");
    }
    url
}

#[test]
fn authorization_urls_as_pocketbase_builds_them() {
    // Taken from PocketBase 0.40.6's auth-methods with the same settings.
    assert_eq!(
        auth_url("apple", json!({})),
        "https://appleid.apple.com/auth/authorize?client_id=cid&code_challenge=C&code_challenge_method=S256&response_mode=form_post&response_type=code&scope=name+email&state=S&redirect_uri="
    );
    assert_eq!(
        auth_url("bitbucket", json!({})),
        "https://bitbucket.org/site/oauth2/authorize?client_id=cid&response_type=code&scope=account&state=S&redirect_uri="
    );
    assert_eq!(
        auth_url("notion", json!({})),
        "https://api.notion.com/v1/oauth/authorize?client_id=cid&code_challenge=C&code_challenge_method=S256&response_type=code&state=S&redirect_uri="
    );
    assert_eq!(
        auth_url("patreon", json!({})),
        "https://www.patreon.com/oauth2/authorize?client_id=cid&code_challenge=C&code_challenge_method=S256&response_type=code&scope=identity+identity%5Bemail%5D&state=S&redirect_uri="
    );
    assert_eq!(
        auth_url("vk", json!({})),
        "https://oauth.vk.com/authorize?client_id=cid&response_type=code&scope=email&state=S&redirect_uri="
    );
    assert_eq!(
        auth_url("microsoft", json!({})),
        "https://login.microsoftonline.com/common/oauth2/v2.0/authorize?client_id=cid&code_challenge=C&code_challenge_method=S256&response_type=code&scope=User.Read&state=S&redirect_uri="
    );
    assert_eq!(
        auth_url("livechat", json!({})),
        "https://accounts.livechat.com/?client_id=cid&code_challenge=C&code_challenge_method=S256&response_type=code&state=S&redirect_uri="
    );
    // The collection's settings override the preset's.
    assert_eq!(
        auth_url("gitlab", json!({"authURL": "https://git.example.com/oauth/authorize", "pkce": false})),
        "https://git.example.com/oauth/authorize?client_id=cid&response_type=code&scope=read_user&state=S&redirect_uri="
    );
    // mailcow and OIDC have no URLs of their own.
    let none = json!({"providers": [{"name": "mailcow", "clientId": "c", "clientSecret": "s"}]});
    assert!(Provider::from_options(&none, "mailcow").is_none());
    // Every preset with URLs builds a URL on its own host.
    for p in PRESETS.iter().filter(|p| !p.auth_url.is_empty()) {
        assert!(
            auth_url(p.name, json!({})).starts_with(p.auth_url),
            "{}",
            p.name
        );
    }
}

#[test]
fn google_and_oidc() {
    let raw = json!({"sub": "1070", "name": "Ada L", "given_name": "Ada", "picture": "https://lh3.googleusercontent.com/a/x", "email": "ada@gmail.com", "email_verified": true, "locale": "en"});
    let u = ok("google", raw.clone());
    assert_eq!(
        fields(&u),
        (
            "1070",
            "Ada L",
            "",
            "ada@gmail.com",
            "https://lh3.googleusercontent.com/a/x"
        )
    );
    assert_eq!(u.raw, raw);
    let u = ok(
        "google",
        json!({"sub": "1", "email": "x@gmail.com", "email_verified": false}),
    );
    assert_eq!(u.email, "", "an unverified address is not taken");
    let u = ok(
        "oidc",
        json!({"sub": "s1", "name": "N", "picture": "https://idp/p.png"}),
    );
    assert_eq!(fields(&u), ("s1", "N", "", "", "https://idp/p.png"));
    assert_eq!(ok("oidc3", json!({"sub": "s3"})).id, "s3");
    let u = ok(
        "oidc2",
        json!({"sub": "s", "preferred_username": "ada", "email": "a@x.io", "email_verified": "true"}),
    );
    assert_eq!(fields(&u), ("s", "", "ada", "a@x.io", ""));
}

#[test]
fn apple_maps_the_claims() {
    let u = ok(
        "apple",
        json!({"iss": "https://appleid.apple.com", "sub": "001.abc", "email": "a@privaterelay.appleid.com", "email_verified": "true"}),
    );
    assert_eq!(
        fields(&u),
        ("001.abc", "", "", "a@privaterelay.appleid.com", "")
    );
    let u = ok(
        "apple",
        json!({"sub": "001", "email": "a@x.io", "email_verified": false}),
    );
    assert_eq!(u.email, "");
}

#[test]
fn microsoft_graph_me() {
    let u = ok(
        "microsoft",
        json!({"@odata.context": "https://graph.microsoft.com/v1.0/$metadata#users/$entity", "displayName": "Adele Vance", "givenName": "Adele", "mail": "AdeleV@contoso.com", "userPrincipalName": "AdeleV@contoso.com", "id": "87d349ed-44d7-43e1-9a83-5f2406dee5bd"}),
    );
    assert_eq!(
        fields(&u),
        (
            "87d349ed-44d7-43e1-9a83-5f2406dee5bd",
            "Adele Vance",
            "",
            "AdeleV@contoso.com",
            ""
        )
    );
}

#[test]
fn microsoft_email_from_the_id_token() {
    let now = chrono::Utc::now().timestamp();
    let tok = |c: Value| {
        format!(
            "{}.{}.sig",
            B64.encode(r#"{"alg":"RS256"}"#),
            B64.encode(c.to_string())
        )
    };
    let both = tok(
        json!({"iat": now, "verified_primary_email": "p@contoso.com", "email": "e@contoso.com", "xms_edov": true}),
    );
    let edov_only = tok(json!({"iat": now, "email": "e@contoso.com", "xms_edov": "1"}));
    let unverified = tok(json!({"iat": now, "email": "e@contoso.com", "xms_edov": false}));
    assert_eq!(
        microsoft_email("verified_primary_email", &both),
        "p@contoso.com"
    );
    assert_eq!(
        microsoft_email("email_and_xms_edov", &both),
        "e@contoso.com"
    );
    assert_eq!(microsoft_email("any_verified", &both), "p@contoso.com");
    assert_eq!(microsoft_email("any_verified", &edov_only), "e@contoso.com");
    assert_eq!(microsoft_email("any_verified", &unverified), "");
    assert_eq!(microsoft_email("email", &unverified), "e@contoso.com");
    let future = tok(json!({"iat": now + 3600, "email": "e@contoso.com"}));
    assert_eq!(microsoft_email("email", &future), "");
    assert_eq!(microsoft_email("email", "garbage"), "");
    // The mode adds `openid` to the scopes.
    let opts = json!({"providers": [{"name": "microsoft", "clientId": "c", "clientSecret": "s", "extra": {"idTokenEmailClaim": "email"}}]});
    assert_eq!(
        Provider::from_options(&opts, "microsoft").unwrap().scopes,
        ["User.Read", "openid"]
    );
}

#[test]
fn yandex_info() {
    let raw = json!({"id": "1000034426", "login": "ivan", "real_name": "Ivan Ivanov", "default_email": "ivan@yandex.ru", "is_avatar_empty": false, "default_avatar_id": "131652443"});
    let u = ok("yandex", raw);
    assert_eq!(
        fields(&u),
        (
            "1000034426",
            "Ivan Ivanov",
            "ivan",
            "ivan@yandex.ru",
            "https://avatars.yandex.net/get-yapic/131652443/islands-200"
        )
    );
    let u = ok(
        "yandex",
        json!({"id": "1", "is_avatar_empty": true, "default_avatar_id": "0/0-0"}),
    );
    assert_eq!(u.avatar_url, "");
}

#[test]
fn facebook_and_instagram() {
    let u = ok(
        "facebook",
        json!({"name": "Ada L", "email": "ada@fb.com", "picture": {"data": {"height": 200, "is_silhouette": false, "url": "https://platform-lookaside.fbsbx.com/x", "width": 200}}, "id": "10158"}),
    );
    assert_eq!(
        fields(&u),
        (
            "10158",
            "Ada L",
            "",
            "ada@fb.com",
            "https://platform-lookaside.fbsbx.com/x"
        )
    );
    let u = mapped(
        "instagram2",
        json!({"id": "app-scoped", "user_id": "17841405822304914", "username": "ada", "name": "Ada", "account_type": "BUSINESS", "profile_picture_url": "https://scontent.cdninstagram.com/p.jpg"}),
        json!({"access_token": "t", "permissions": ["instagram_business_basic"]}),
        &[],
    )
    .unwrap();
    assert_eq!(
        fields(&u),
        (
            "17841405822304914",
            "Ada",
            "ada",
            "",
            "https://scontent.cdninstagram.com/p.jpg"
        )
    );
    assert_eq!(u.raw["permissions"], json!(["instagram_business_basic"]));
}

#[test]
fn github_takes_the_verified_primary_address() {
    let raw = json!({"login": "octocat", "id": 583231, "avatar_url": "https://avatars.githubusercontent.com/u/583231?v=4", "name": "The Octocat", "email": null});
    let emails = json!([
        {"email": "other@github.com", "primary": false, "verified": true, "visibility": null},
        {"email": "octocat@github.com", "primary": true, "verified": true, "visibility": "public"}
    ]);
    let u = mapped(
        "github",
        raw.clone(),
        json!({}),
        &[("https://api.github.com/user/emails", emails)],
    )
    .unwrap();
    assert_eq!(
        fields(&u),
        (
            "583231",
            "The Octocat",
            "octocat",
            "octocat@github.com",
            "https://avatars.githubusercontent.com/u/583231?v=4"
        )
    );
    let unverified = json!([{"email": "octocat@github.com", "primary": true, "verified": false}]);
    let u = mapped(
        "github",
        raw.clone(),
        json!({}),
        &[("https://api.github.com/user/emails", unverified)],
    )
    .unwrap();
    assert_eq!(u.email, "");
    // No access to the list: no email, the login still goes on.
    assert_eq!(mapped("github", raw, json!({}), &[]).unwrap().email, "");
}

#[test]
fn gitlab_email_needs_a_confirmation() {
    let raw = json!({"id": 1, "username": "john_smith", "name": "John Smith", "state": "active", "avatar_url": "http://localhost:3000/uploads/user/avatar/1/index.jpg", "email": "john@example.com", "confirmed_at": "2012-05-23T09:05:22Z"});
    assert_eq!(
        fields(&ok("gitlab", raw)),
        (
            "1",
            "John Smith",
            "john_smith",
            "john@example.com",
            "http://localhost:3000/uploads/user/avatar/1/index.jpg"
        )
    );
    let u = ok(
        "gitlab",
        json!({"id": 2, "email": "x@example.com", "confirmed_at": null}),
    );
    assert_eq!(u.email, "");
}

#[test]
fn bitbucket_active_and_emails() {
    let raw = json!({"uuid": "{d301aafa-d676-4ee0-88be-962be7417567}", "username": "ada", "display_name": "Ada L", "account_status": "active", "links": {"avatar": {"href": "https://bitbucket.org/account/ada/avatar/32/"}}});
    let emails = json!({"pagelen": 10, "values": [
        {"is_primary": false, "is_confirmed": true, "type": "email", "email": "old@example.com"},
        {"is_primary": true, "is_confirmed": true, "type": "email", "email": "ada@example.com"}
    ], "page": 1, "size": 2});
    let u = mapped(
        "bitbucket",
        raw.clone(),
        json!({}),
        &[("https://api.bitbucket.org/2.0/user/emails", emails)],
    )
    .unwrap();
    assert_eq!(
        fields(&u),
        (
            "{d301aafa-d676-4ee0-88be-962be7417567}",
            "Ada L",
            "ada",
            "ada@example.com",
            "https://bitbucket.org/account/ada/avatar/32/"
        )
    );
    let mut closed = raw;
    closed["account_status"] = json!("closed");
    assert!(
        mapped("bitbucket", closed, json!({}), &[]).is_err(),
        "an inactive account"
    );
}

#[test]
fn gitee_own_address_else_the_confirmed_primary() {
    let raw = json!({"id": 123, "login": "ada", "name": "Ada", "avatar_url": "https://gitee.com/assets/no_portrait.png", "email": null});
    let emails = json!([
        {"email": "no@example.com", "state": "unconfirmed", "scope": ["primary"]},
        {"email": "ada@example.com", "state": "confirmed", "scope": ["committed", "primary"]}
    ]);
    let u = mapped(
        "gitee",
        raw.clone(),
        json!({}),
        &[("https://gitee.com/api/v5/emails", emails)],
    )
    .unwrap();
    assert_eq!(
        fields(&u),
        (
            "123",
            "Ada",
            "ada",
            "ada@example.com",
            "https://gitee.com/assets/no_portrait.png"
        )
    );
    let mut own = raw;
    own["email"] = json!("own@example.com");
    assert_eq!(
        mapped("gitee", own, json!({}), &[]).unwrap().email,
        "own@example.com"
    );
}

#[test]
fn gitea_active_and_emails() {
    let raw = json!({"id": 7, "login": "ada", "full_name": "Ada L", "email": "ada@example.com", "avatar_url": "https://gitea.com/avatars/x", "active": true});
    let emails = json!([{"email": "ada@example.com", "verified": true, "primary": true}]);
    let u = mapped(
        "gitea",
        raw.clone(),
        json!({}),
        &[("https://gitea.com/api/v1/user/emails", emails)],
    )
    .unwrap();
    assert_eq!(
        fields(&u),
        (
            "7",
            "Ada L",
            "ada",
            "ada@example.com",
            "https://gitea.com/avatars/x"
        )
    );
    let mut off = raw;
    off["active"] = json!(false);
    assert!(mapped("gitea", off, json!({}), &[]).is_err());
}

#[test]
fn discord_name_and_avatar() {
    let raw = json!({"id": "80351110224678912", "username": "nelly", "discriminator": "1337", "global_name": null, "avatar": "8342729096ea3675442027381ff50dfe", "verified": true, "email": "nelly@discord.com"});
    assert_eq!(fields(&ok("discord", raw)), ("80351110224678912", "nelly#1337", "nelly", "nelly@discord.com", "https://cdn.discordapp.com/avatars/80351110224678912/8342729096ea3675442027381ff50dfe.png"));
    let u = ok(
        "discord",
        json!({"id": "1", "username": "n", "discriminator": "0", "global_name": "Nelly", "avatar": null, "verified": false, "email": "n@d.com"}),
    );
    assert_eq!(fields(&u), ("1", "Nelly", "n", "", ""));
}

#[test]
fn twitter_users_me() {
    let u = ok(
        "twitter",
        json!({"data": {"id": "2244994945", "name": "X Dev", "username": "XDevelopers", "profile_image_url": "https://pbs.twimg.com/profile_images/x_normal.jpg", "confirmed_email": "dev@x.com"}}),
    );
    assert_eq!(
        fields(&u),
        (
            "2244994945",
            "X Dev",
            "XDevelopers",
            "dev@x.com",
            "https://pbs.twimg.com/profile_images/x_normal.jpg"
        )
    );
}

#[test]
fn kakao_needs_valid_and_verified() {
    let raw = json!({"id": 123456789, "properties": {"nickname": "ada", "profile_image": "http://k.kakaocdn.net/p.jpg"}, "kakao_account": {"email": "ada@kakao.com", "is_email_valid": true, "is_email_verified": true}});
    assert_eq!(
        fields(&ok("kakao", raw.clone())),
        (
            "123456789",
            "",
            "ada",
            "ada@kakao.com",
            "http://k.kakaocdn.net/p.jpg"
        )
    );
    let mut r = raw;
    r["kakao_account"]["is_email_valid"] = json!(false);
    assert_eq!(ok("kakao", r).email, "");
}

#[test]
fn vk_email_from_the_token() {
    let raw = json!({"response": [{"id": 210700286, "first_name": "Lindsey", "last_name": "Stirling", "screen_name": "lindseystirling", "photo_max": "https://sun1.userapi.com/p.jpg"}]});
    let u = mapped("vk", raw, json!({"access_token": "t", "expires_in": 86400, "user_id": 210700286, "email": "l@vk.com"}), &[]).unwrap();
    assert_eq!(
        fields(&u),
        (
            "210700286",
            "Lindsey Stirling",
            "lindseystirling",
            "l@vk.com",
            "https://sun1.userapi.com/p.jpg"
        )
    );
    assert!(mapped("vk", json!({"response": []}), json!({}), &[]).is_err());
}

#[test]
fn graphql_providers() {
    let raw = json!({"data": {"viewer": {"id": "u1", "displayName": "ada", "name": "Ada L", "email": "ada@linear.app", "avatarUrl": "https://public.linear.app/a.png", "active": true}}});
    assert_eq!(
        fields(&ok("linear", raw)),
        (
            "u1",
            "Ada L",
            "ada",
            "ada@linear.app",
            "https://public.linear.app/a.png"
        )
    );
    assert!(mapped(
        "linear",
        json!({"data": {"viewer": {"id": "u1", "active": false}}}),
        json!({}),
        &[]
    )
    .is_err());
    let raw = json!({"data": {"me": {"id": "123", "enabled": true, "name": "Ada", "email": "ada@monday.com", "is_verified": true, "photo_small": "https://files.monday.com/p.png"}}, "account_id": 1});
    assert_eq!(
        fields(&ok("monday", raw)),
        (
            "123",
            "Ada",
            "",
            "ada@monday.com",
            "https://files.monday.com/p.png"
        )
    );
    assert!(mapped(
        "monday",
        json!({"data": {"me": {"id": "1", "enabled": false}}}),
        json!({}),
        &[]
    )
    .is_err());
    assert!(preset("linear")
        .unwrap()
        .info_post
        .unwrap()
        .contains("viewer"));
}

#[test]
fn notion_bot_owner() {
    let raw = json!({"object": "user", "id": "bot-id", "name": "Integration", "type": "bot", "bot": {"owner": {"type": "user", "user": {"object": "user", "id": "e79a0b74", "name": "Ada L", "avatar_url": "https://s3.notion.so/a.png", "type": "person", "person": {"email": "ada@notion.so"}}}, "workspace_name": "Ada's"}});
    assert_eq!(
        fields(&ok("notion", raw)),
        (
            "e79a0b74",
            "Ada L",
            "",
            "ada@notion.so",
            "https://s3.notion.so/a.png"
        )
    );
    assert_eq!(
        preset("notion").unwrap().info_headers,
        &[("Notion-Version", "2022-06-28")]
    );
}

#[test]
fn lark_box_spotify_trakt() {
    let u = ok(
        "lark",
        json!({"code": 0, "msg": "success", "data": {"name": "Ada", "avatar_url": "https://lf1.feishucdn.com/a.png", "open_id": "ou_1", "union_id": "on_1", "user_id": "u1"}}),
    );
    assert_eq!(
        fields(&u),
        ("on_1", "Ada", "", "", "https://lf1.feishucdn.com/a.png")
    );
    let u = ok(
        "box",
        json!({"type": "user", "id": "11446498", "name": "Aaron Levie", "login": "ceo@example.com", "status": "active", "avatar_url": "https://www.box.com/api/avatar/large/181216415"}),
    );
    assert_eq!(
        fields(&u),
        (
            "11446498",
            "Aaron Levie",
            "",
            "ceo@example.com",
            "https://www.box.com/api/avatar/large/181216415"
        )
    );
    assert!(mapped(
        "box",
        json!({"id": "1", "status": "inactive"}),
        json!({}),
        &[]
    )
    .is_err());
    let u = ok(
        "spotify",
        json!({"id": "wizzler", "display_name": "JM Wizzler", "images": [{"url": "https://i.scdn.co/image/ab67", "height": 300, "width": 300}], "type": "user"}),
    );
    assert_eq!(
        fields(&u),
        (
            "wizzler",
            "JM Wizzler",
            "",
            "",
            "https://i.scdn.co/image/ab67"
        )
    );
    assert_eq!(
        ok("spotify", json!({"id": "w", "images": []})).avatar_url,
        ""
    );
    let u = ok(
        "trakt",
        json!({"user": {"username": "justin", "private": false, "name": "Justin Nemeth", "vip": true, "ids": {"slug": "justin", "uuid": "b6589fc6ab0dc82cf12099d1c2d40ab994e8410c"}, "images": {"avatar": {"full": "https://walter.trakt.tv/a.jpg"}}}}),
    );
    assert_eq!(
        fields(&u),
        (
            "b6589fc6ab0dc82cf12099d1c2d40ab994e8410c",
            "Justin Nemeth",
            "justin",
            "",
            "https://walter.trakt.tv/a.jpg"
        )
    );
    let h = preset("trakt").unwrap().info_headers;
    assert!(
        h.contains(&("trakt-api-key", "{clientId}")) && h.contains(&("trakt-api-version", "2"))
    );
}

#[test]
fn twitch_patreon_strava_wakatime() {
    let u = ok(
        "twitch",
        json!({"data": [{"id": "141981764", "login": "twitchdev", "display_name": "TwitchDev", "profile_image_url": "https://static-cdn.jtvnw.net/p.png", "email": "dev@twitch.tv"}]}),
    );
    assert_eq!(
        fields(&u),
        (
            "141981764",
            "TwitchDev",
            "twitchdev",
            "dev@twitch.tv",
            "https://static-cdn.jtvnw.net/p.png"
        )
    );
    let u = ok(
        "patreon",
        json!({"data": {"id": "12345", "type": "user", "attributes": {"email": "ada@patreon.com", "full_name": "Ada L", "vanity": "ada", "image_url": "https://c8.patreon.com/a.png", "is_email_verified": true}}}),
    );
    assert_eq!(
        fields(&u),
        (
            "12345",
            "Ada L",
            "ada",
            "ada@patreon.com",
            "https://c8.patreon.com/a.png"
        )
    );
    let u = ok(
        "strava",
        json!({"id": 1234567890987654321_u64, "username": "marianne_t", "firstname": "Marianne", "lastname": "T.", "profile": "https://dgalywyr863hv.cloudfront.net/large.jpg"}),
    );
    assert_eq!(
        fields(&u),
        (
            "1234567890987654321",
            "Marianne T.",
            "marianne_t",
            "",
            "https://dgalywyr863hv.cloudfront.net/large.jpg"
        )
    );
    assert!(mapped("strava", json!({"id": 0}), json!({}), &[])
        .unwrap()
        .id
        .is_empty());
    let raw = json!({"data": {"id": "uuid-1", "display_name": "Ada L", "username": "ada", "email": "ada@waka.com", "photo": "https://wakatime.com/photo/uuid-1", "photo_public": false, "is_email_confirmed": true}});
    assert_eq!(
        fields(&ok("wakatime", raw.clone())),
        ("uuid-1", "Ada L", "ada", "ada@waka.com", "")
    );
    let mut public = raw;
    public["data"]["photo_public"] = json!(true);
    assert_eq!(
        ok("wakatime", public).avatar_url,
        "https://wakatime.com/photo/uuid-1"
    );
}

#[test]
fn livechat_mailcow_planningcenter() {
    let u = ok(
        "livechat",
        json!({"account_id": "a-1", "name": "Ada", "email": "ada@livechat.com", "email_verified": true, "avatar_url": "https://cdn.livechat-files.com/a.png"}),
    );
    assert_eq!(
        fields(&u),
        (
            "a-1",
            "Ada",
            "",
            "ada@livechat.com",
            "https://cdn.livechat-files.com/a.png"
        )
    );
    let u = ok(
        "mailcow",
        json!({"id": "ada@mail.example.com", "username": "ada@mail.example.com", "email": "ada@mail.example.com", "full_name": "Ada L", "active": 1}),
    );
    assert_eq!(
        fields(&u),
        (
            "ada@mail.example.com",
            "Ada L",
            "ada",
            "ada@mail.example.com",
            ""
        )
    );
    assert!(mapped("mailcow", json!({"id": "x", "active": 0}), json!({}), &[]).is_err());
    let u = ok(
        "planningcenter",
        json!({"data": {"type": "Person", "id": "1", "attributes": {"name": "Ada L", "avatar": "https://people.planningcenteronline.com/a.png", "status": "active"}}}),
    );
    assert_eq!(
        fields(&u),
        (
            "1",
            "Ada L",
            "",
            "",
            "https://people.planningcenteronline.com/a.png"
        )
    );
    assert!(mapped(
        "planningcenter",
        json!({"data": {"id": "1", "attributes": {"status": "inactive"}}}),
        json!({}),
        &[]
    )
    .is_err());
}

#[test]
fn every_preset_has_a_mapping_test() {
    let src = include_str!("oauth2_tests.rs");
    for p in PRESETS {
        assert!(
            src.contains(&format!("\"{}\"", p.name)),
            "no test for {}",
            p.name
        );
    }
}

// Apple: the client secret and the id_token.

fn ec_pem() -> (String, Vec<u8>) {
    use ring::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
    let rng = ring::rand::SystemRandom::new();
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
    let kp =
        EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng).unwrap();
    let b64 = base64::engine::general_purpose::STANDARD.encode(pkcs8.as_ref());
    let lines: Vec<&str> = b64
        .as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect();
    let pem = format!(
        "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
        lines.join("\n")
    );
    (pem, kp.public_key().as_ref().to_vec())
}

#[test]
fn apple_client_secret_is_an_es256_jwt() {
    let (pem, public) = ec_pem();
    let now = 1_800_000_000;
    let jwt = apple_client_secret(
        "com.example.app",
        "ABCDEFGHIJ",
        "KEY1234567",
        &pem,
        3600,
        now,
    )
    .unwrap();
    let (header, claims, signed, sig) = jwt_parts(&jwt).unwrap();
    assert_eq!(
        header,
        json!({"alg": "ES256", "kid": "KEY1234567", "typ": "JWT"})
    );
    assert_eq!(
        claims,
        json!({"iss": "ABCDEFGHIJ", "sub": "com.example.app", "aud": ["https://appleid.apple.com"], "exp": now + 3600, "iat": now})
    );
    // PocketBase's field order.
    let raw_claims =
        String::from_utf8(B64.decode(jwt.split('.').nth(1).unwrap()).unwrap()).unwrap();
    assert!(
        raw_claims.starts_with(r#"{"iss":"ABCDEFGHIJ","sub":"com.example.app","aud":["#),
        "{raw_claims}"
    );
    assert_eq!(sig.len(), 64, "JWS ES256 is r||s");
    let key =
        ring::signature::UnparsedPublicKey::new(&ring::signature::ECDSA_P256_SHA256_FIXED, &public);
    key.verify(signed.as_bytes(), &sig)
        .expect("the signature verifies");
    let mut bad = sig.clone();
    bad[5] ^= 1;
    assert!(key.verify(signed.as_bytes(), &bad).is_err());
    // Not a key: refused with PocketBase's words.
    let e = apple_client_secret(
        "c",
        "ABCDEFGHIJ",
        "KEY1234567",
        "-----BEGIN PRIVATE KEY----- abc -----END PRIVATE KEY-----",
        5,
        now,
    )
    .unwrap_err();
    assert!(e.starts_with("invalid key"), "{e}");
}

/// A 2048-bit RSA test key (PKCS#1 DER, base64), made for these tests only.
const RSA_TEST_KEY: &str = include_str!("testdata/rsa2048.der.b64");

fn rsa_signed(header: &Value, claims: &Value) -> (String, Value) {
    use ring::signature::{RsaKeyPair, RSA_PKCS1_SHA256};
    let der = base64::engine::general_purpose::STANDARD
        .decode(RSA_TEST_KEY.split_whitespace().collect::<String>())
        .unwrap();
    let kp = RsaKeyPair::from_der(&der).unwrap();
    let signed = format!(
        "{}.{}",
        B64.encode(header.to_string()),
        B64.encode(claims.to_string())
    );
    let mut sig = vec![0u8; kp.public().modulus_len()];
    kp.sign(
        &RSA_PKCS1_SHA256,
        &ring::rand::SystemRandom::new(),
        signed.as_bytes(),
        &mut sig,
    )
    .unwrap();
    let comps: ring::rsa::PublicKeyComponents<Vec<u8>> = kp.public().into();
    let jwks = json!({"keys": [
        {"kty": "RSA", "kid": "other", "use": "sig", "alg": "RS256", "n": B64.encode([1u8; 256]), "e": "AQAB"},
        {"kty": "RSA", "kid": "k1", "use": "sig", "alg": "RS256", "n": B64.encode(&comps.n), "e": B64.encode(&comps.e)}
    ]});
    (format!("{signed}.{}", B64.encode(sig)), jwks)
}

#[test]
fn apple_id_token_is_checked() {
    let now = chrono::Utc::now().timestamp();
    let header = json!({"kid": "k1", "alg": "RS256"});
    let good = json!({"iss": "https://appleid.apple.com", "aud": "com.example.app", "exp": now + 600, "iat": now, "sub": "001.x", "email": "a@x.io", "email_verified": "true"});
    let (tok, jwks) = rsa_signed(&header, &good);
    let asked = RefCell::new(String::new());
    let keys = |kid: &str| {
        *asked.borrow_mut() = kid.to_string();
        Ok(jwks.clone())
    };
    let claims = apple_claims(&tok, "com.example.app", &keys).unwrap();
    assert_eq!(claims["sub"], "001.x");
    assert_eq!(*asked.borrow(), "k1");
    assert!(
        apple_claims(&tok, "com.other.app", &keys).is_err(),
        "another audience"
    );
    assert!(apple_claims("", "com.example.app", &keys).is_err());
    // A changed claim breaks the signature.
    let mut parts: Vec<String> = tok.split('.').map(str::to_string).collect();
    let mut forged = good.clone();
    forged["sub"] = json!("001.y");
    parts[1] = B64.encode(forged.to_string());
    assert!(apple_claims(&parts.join("."), "com.example.app", &keys)
        .unwrap_err()
        .contains("signature"));
    // Each claim check, with a valid signature.
    for (k, v) in [
        ("iss", json!("https://evil.example")),
        ("exp", json!(now - 3600)),
        ("iat", json!(now + 3600)),
    ] {
        let mut c = good.clone();
        c[k] = v;
        let (t, j) = rsa_signed(&header, &c);
        assert!(
            apple_claims(&t, "com.example.app", &|_| Ok(j.clone())).is_err(),
            "{k}"
        );
    }
    let mut c = good.clone();
    c.as_object_mut().unwrap().remove("exp");
    let (t, j) = rsa_signed(&header, &c);
    assert!(
        apple_claims(&t, "com.example.app", &|_| Ok(j.clone())).is_err(),
        "exp required"
    );
    // An unknown key id, another algorithm.
    let (t, j) = rsa_signed(&json!({"kid": "nope", "alg": "RS256"}), &good);
    assert!(apple_claims(&t, "com.example.app", &|_| Ok(j.clone())).is_err());
    let (t, j) = rsa_signed(&json!({"kid": "k1", "alg": "none"}), &good);
    assert!(apple_claims(&t, "com.example.app", &|_| Ok(j.clone())).is_err());
    // Within the leeway is fine; an audience list works.
    let mut c = good.clone();
    c["exp"] = json!(now - 60);
    c["aud"] = json!(["x", "com.example.app"]);
    let (t, j) = rsa_signed(&header, &c);
    assert!(apple_claims(&t, "com.example.app", &|_| Ok(j.clone())).is_ok());
}

fn ed25519_signed(header: &Value, claims: &Value) -> (String, Value) {
    use ring::signature::{Ed25519KeyPair, KeyPair};
    let rng = ring::rand::SystemRandom::new();
    let pkcs8 = Ed25519KeyPair::generate_pkcs8(&rng).unwrap();
    let kp = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap();
    let signed = format!(
        "{}.{}",
        B64.encode(header.to_string()),
        B64.encode(claims.to_string())
    );
    let sig = kp.sign(signed.as_bytes());
    let jwks = json!({"keys": [{"kty": "OKP", "crv": "Ed25519", "kid": "ed1", "alg": "EdDSA", "x": B64.encode(kp.public_key().as_ref())}]});
    (format!("{signed}.{}", B64.encode(sig.as_ref())), jwks)
}

#[test]
fn oidc_id_token_checks() {
    let now = chrono::Utc::now().timestamp();
    let claims = json!({"iss": "https://idp.example.com", "aud": "cid", "iat": now, "exp": now + 300, "sub": "u1"});
    let header = json!({"alg": "EdDSA", "kid": "ed1"});
    let (tok, keys) = ed25519_signed(&header, &claims);
    let issuers = vec![
        "https://other.example".to_string(),
        "https://idp.example.com".to_string(),
    ];
    let check = IdTokenCheck {
        client_id: "cid",
        issuers: &issuers,
        exp_required: false,
    };
    let k = |_: &str| Ok(keys.clone());
    assert_eq!(
        checked_id_token(&tok, &check, Some(&k)).unwrap()["sub"],
        "u1"
    );
    // Without a key set the claims are taken as the token endpoint gave
    // them, still checked.
    assert!(checked_id_token(&tok, &check, None).is_ok());
    let other = IdTokenCheck {
        client_id: "nope",
        issuers: &issuers,
        exp_required: false,
    };
    assert!(checked_id_token(&tok, &other, None).is_err(), "audience");
    let only = vec!["https://other.example".to_string()];
    let iss = IdTokenCheck {
        client_id: "cid",
        issuers: &only,
        exp_required: false,
    };
    assert!(checked_id_token(&tok, &iss, None).is_err(), "issuer");
    // Another key with the same id: the signature fails.
    let (_, other_keys) = ed25519_signed(&header, &claims);
    let k2 = |_: &str| Ok(other_keys.clone());
    assert!(checked_id_token(&tok, &check, Some(&k2))
        .unwrap_err()
        .contains("signature"));
    // A key without `alg` is not taken (PocketBase's rule).
    let mut no_alg = keys.clone();
    no_alg["keys"][0].as_object_mut().unwrap().remove("alg");
    let k3 = |_: &str| Ok(no_alg.clone());
    assert!(checked_id_token(&tok, &check, Some(&k3)).is_err());
    // Unsigned, or alg none: refused when a key set is configured.
    let parts: Vec<&str> = tok.split('.').collect();
    let none = format!(
        "{}.{}.",
        B64.encode(json!({"alg": "none", "kid": "ed1"}).to_string()),
        parts[1]
    );
    assert!(checked_id_token(&none, &check, Some(&k)).is_err());
    // Expired beyond the leeway.
    let mut old = claims.clone();
    old["exp"] = json!(now - 600);
    let (t, j) = ed25519_signed(&header, &old);
    assert!(checked_id_token(&t, &check, Some(&|_: &str| Ok(j.clone()))).is_err());
}

#[test]
fn oidc_without_user_info_needs_no_url() {
    let opts = json!({"providers": [{"name": "oidc", "clientId": "c", "clientSecret": "s", "authURL": "https://idp/a", "tokenURL": "https://idp/t", "extra": {"jwksURL": "https://idp/jwks"}}]});
    let p = Provider::from_options(&opts, "oidc").unwrap();
    assert_eq!(p.extra["jwksURL"], "https://idp/jwks");
    assert!(p.user_info_url.is_empty());
    // A preset that reads a user-info endpoint needs one.
    let opts = json!({"providers": [{"name": "mailcow", "clientId": "c", "clientSecret": "s", "authURL": "https://m/a", "tokenURL": "https://m/t"}]});
    assert!(Provider::from_options(&opts, "mailcow").is_none());
}

/// Requests seen: (request line, lower-cased headers, body).
type Seen = std::sync::Arc<std::sync::Mutex<Vec<(String, Vec<(String, String)>, String)>>>;

/// A local server recording the requests it gets and answering each with
/// `answer`.
fn recorder(answer: &'static str) -> (String, Seen) {
    use std::io::{BufRead, BufReader, Read, Write};
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", l.local_addr().unwrap());
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let rec = seen.clone();
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { continue };
            let mut r = BufReader::new(s.try_clone().unwrap());
            let mut line = String::new();
            r.read_line(&mut line).unwrap();
            let mut headers = Vec::new();
            let mut len = 0;
            loop {
                let mut h = String::new();
                r.read_line(&mut h).unwrap();
                let h = h.trim_end().to_string();
                if h.is_empty() {
                    break;
                }
                let (k, v) = h.split_once(':').unwrap();
                let (k, v) = (k.to_ascii_lowercase(), v.trim().to_string());
                if k == "content-length" {
                    len = v.parse().unwrap();
                }
                headers.push((k, v));
            }
            let mut body = vec![0; len];
            r.read_exact(&mut body).unwrap();
            rec.lock().unwrap().push((
                line.trim_end().to_string(),
                headers,
                String::from_utf8(body).unwrap(),
            ));
            let _ = write!(s, "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{answer}", answer.len());
        }
    });
    (base, seen)
}

#[test]
fn user_info_requests_as_each_provider_wants_them() {
    for (name, method, extra) in [
        ("linear", "POST", vec![("content-type", "application/json")]),
        ("monday", "POST", vec![("content-type", "application/json")]),
        (
            "trakt",
            "GET",
            vec![("trakt-api-key", "my-client"), ("trakt-api-version", "2")],
        ),
        ("twitch", "GET", vec![("client-id", "my-client")]),
        ("notion", "GET", vec![("notion-version", "2022-06-28")]),
        ("google", "GET", vec![]),
    ] {
        let (base, seen) = recorder(r#"{"id":"x"}"#);
        let opts = json!({"providers": [{"name": name, "clientId": "my-client", "clientSecret": "s", "userInfoURL": format!("{base}/me")}]});
        let p = Provider::from_options(&opts, name).unwrap();
        let v = p.fetch_info(&provider_agent(), "tok-1").unwrap();
        assert_eq!(v, json!({"id": "x"}), "{name}");
        let seen = seen.lock().unwrap();
        let (line, headers, body) = &seen[0];
        assert_eq!(line, &format!("{method} /me HTTP/1.1"), "{name}");
        let h = |k: &str| {
            headers
                .iter()
                .find(|(n, _)| n == k)
                .map(|(_, v)| v.as_str())
        };
        assert_eq!(h("authorization"), Some("Bearer tok-1"), "{name}");
        for (k, v) in extra {
            assert_eq!(h(k), Some(v), "{name}: {k}");
        }
        let want_body = preset(name).unwrap().info_post.unwrap_or("");
        assert_eq!(body, want_body, "{name}");
    }
}

#[test]
fn code_exchange_basic_first_then_the_form() {
    let (base, seen) = recorder(r#"{"access_token":"at","token_type":"Bearer","expires_in":"60"}"#);
    let opts = json!({"providers": [{"name": "gitlab", "clientId": "my client", "clientSecret": "s&cret", "tokenURL": format!("{base}/token")}]});
    let p = Provider::from_options(&opts, "gitlab").unwrap();
    let tok = p
        .exchange(
            &provider_agent(),
            "the-code",
            "the-verifier",
            "https://app/cb",
            true,
        )
        .unwrap();
    assert_eq!(tok["access_token"], "at");
    let tok = p
        .exchange(
            &provider_agent(),
            "the-code",
            "the-verifier",
            "https://app/cb",
            false,
        )
        .unwrap();
    assert_eq!(tok["access_token"], "at");
    let seen = seen.lock().unwrap();
    let (line, headers, body) = &seen[0];
    assert_eq!(line, "POST /token HTTP/1.1");
    let auth = headers
        .iter()
        .find(|(k, _)| k == "authorization")
        .map(|(_, v)| v.clone())
        .unwrap();
    let cred = base64::engine::general_purpose::STANDARD
        .decode(auth.strip_prefix("Basic ").unwrap())
        .unwrap();
    assert_eq!(
        cred, b"my+client:s%26cret",
        "each part URL-encoded (RFC 6749 2.3.1)"
    );
    let form: std::collections::HashMap<String, String> = form_urlencoded::parse(body.as_bytes())
        .into_owned()
        .collect();
    assert_eq!(form["grant_type"], "authorization_code");
    assert_eq!(form["code"], "the-code");
    assert_eq!(form["code_verifier"], "the-verifier");
    assert_eq!(form["redirect_uri"], "https://app/cb");
    assert!(!form.contains_key("client_secret"));
    let (_, headers, body) = &seen[1];
    assert!(!headers.iter().any(|(k, _)| k == "authorization"));
    let form: std::collections::HashMap<String, String> = form_urlencoded::parse(body.as_bytes())
        .into_owned()
        .collect();
    assert_eq!(
        (form["client_id"].as_str(), form["client_secret"].as_str()),
        ("my client", "s&cret")
    );
    // Without PKCE no verifier goes.
    drop(seen);
    let (base, seen) = recorder(r#"{"access_token":"at"}"#);
    let opts = json!({"providers": [{"name": "bitbucket", "clientId": "c", "clientSecret": "s", "tokenURL": format!("{base}/token")}]});
    let p = Provider::from_options(&opts, "bitbucket").unwrap();
    p.exchange(&provider_agent(), "c1", "v", "https://app/cb", false)
        .unwrap();
    assert!(!seen.lock().unwrap()[0].2.contains("code_verifier"));
    // A 200 without an access token is a failure.
    let (base, _) = recorder(r#"{"error":"nope"}"#);
    let opts = json!({"providers": [{"name": "gitlab", "clientId": "c", "clientSecret": "s", "tokenURL": format!("{base}/token")}]});
    let p = Provider::from_options(&opts, "gitlab").unwrap();
    assert!(p.exchange(&provider_agent(), "c", "v", "r", true).is_err());
}
