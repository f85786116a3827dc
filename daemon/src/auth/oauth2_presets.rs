//! PocketBase's OAuth2 providers as data: for each, its endpoints, scopes,
//! whether it takes PKCE, and where the user's id, name, username, email,
//! avatar and email verification sit in its user-info answer (JSON
//! pointers). What no table can say (an id_token to check, a second
//! request for the email, a name or an avatar URL put together from
//! parts) is a `Quirk`, handled in `oauth2.rs`.
//!
//! The order is PocketBase's (its dashboard lists them so); the names and
//! display names PocketBase's `GET /api/collections/meta/oauth2-providers`
//! answers are in `oauth2_providers.json`, with keepd's own letter-mark
//! SVG logos.

/// Whether the provider's email may be taken as verified.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Verified {
    /// The provider only gives verified addresses.
    Always,
    /// Each of these pointers holds `true` (or `"true"`).
    Flags(&'static [&'static str]),
    /// This pointer holds an RFC 3339 time (the confirmation's).
    Time(&'static str),
    /// No email from this provider.
    Never,
}

/// What a provider needs beyond the table.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Quirk {
    None,
    /// Generic OpenID Connect: the user-info URL, else the id_token.
    Oidc,
    /// The user is the `id_token`, its signature checked against Apple's keys.
    Apple,
    /// The verified primary address from `{userInfoURL}/emails`.
    Github,
    /// The primary confirmed address from `{userInfoURL}/emails` (`values`).
    Bitbucket,
    /// The profile's address when it is one, else the confirmed primary
    /// from `https://gitee.com/api/v5/emails`.
    Gitee,
    /// The verified primary address from `{userInfoURL}/emails`.
    Gitea,
    /// Name from `global_name`, else `username#discriminator`; avatar URL
    /// from the id and avatar hash.
    Discord,
    /// Avatar URL from `default_avatar_id` unless `is_avatar_empty`.
    Yandex,
    /// Name from first and last names; email from the token answer.
    Vk,
    /// Name from first and last names; id only when not 0.
    Strava,
    /// Username without its `@domain`.
    Mailcow,
    /// Avatar only when `photo_public`.
    Wakatime,
    /// The token answer's `permissions` kept in the raw user.
    Instagram,
    /// The email from the id_token's claims when `extra.idTokenEmailClaim`
    /// says which (`openid` is then asked for too), else `mail`.
    Microsoft,
}

#[derive(Debug, Clone, Copy)]
pub struct Preset {
    pub name: &'static str,
    pub display: &'static str,
    pub auth_url: &'static str,
    pub token_url: &'static str,
    pub user_info_url: &'static str,
    pub scopes: &'static [&'static str],
    pub pkce: bool,
    /// Extra authorization URL parameters.
    pub auth_params: &'static [(&'static str, &'static str)],
    /// The user info is a POST of this JSON body (GraphQL), else a GET.
    pub info_post: Option<&'static str>,
    /// Extra user-info request headers; `{clientId}` is the client id.
    pub info_headers: &'static [(&'static str, &'static str)],
    pub id: &'static str,
    pub user_name: &'static str,
    pub username: &'static str,
    pub email: &'static str,
    pub avatar: &'static str,
    pub verified: Verified,
    /// The account counts only when this pointer holds this JSON value.
    pub active: Option<(&'static str, &'static str)>,
    pub quirk: Quirk,
}

const BASE: Preset = Preset {
    name: "",
    display: "",
    auth_url: "",
    token_url: "",
    user_info_url: "",
    scopes: &[],
    pkce: true,
    auth_params: &[],
    info_post: None,
    info_headers: &[],
    id: "/id",
    user_name: "/name",
    username: "",
    email: "",
    avatar: "",
    verified: Verified::Never,
    active: None,
    quirk: Quirk::None,
};

const OIDC: Preset = Preset {
    name: "oidc",
    display: "OIDC",
    scopes: &["openid", "email", "profile"],
    id: "/sub",
    username: "/preferred_username",
    email: "/email",
    avatar: "/picture",
    verified: Verified::Flags(&["/email_verified"]),
    quirk: Quirk::Oidc,
    ..BASE
};

/// Every provider PocketBase 0.40.6 ships, in its order.
pub const PRESETS: &[Preset] = &[
    Preset {
        name: "apple",
        display: "Apple",
        auth_url: "https://appleid.apple.com/auth/authorize",
        token_url: "https://appleid.apple.com/auth/token",
        scopes: &["name", "email"],
        auth_params: &[("response_mode", "form_post")],
        id: "/sub",
        email: "/email",
        verified: Verified::Flags(&["/email_verified"]),
        quirk: Quirk::Apple,
        ..BASE
    },
    Preset {
        name: "google",
        display: "Google",
        auth_url: "https://accounts.google.com/o/oauth2/v2/auth",
        token_url: "https://oauth2.googleapis.com/token",
        user_info_url: "https://www.googleapis.com/oauth2/v3/userinfo",
        scopes: &[
            "https://www.googleapis.com/auth/userinfo.profile",
            "https://www.googleapis.com/auth/userinfo.email",
        ],
        id: "/sub",
        email: "/email",
        avatar: "/picture",
        verified: Verified::Flags(&["/email_verified"]),
        ..BASE
    },
    Preset {
        name: "microsoft",
        display: "Microsoft",
        auth_url: "https://login.microsoftonline.com/common/oauth2/v2.0/authorize",
        token_url: "https://login.microsoftonline.com/common/oauth2/v2.0/token",
        user_info_url: "https://graph.microsoft.com/v1.0/me",
        scopes: &["User.Read"],
        user_name: "/displayName",
        email: "/mail",
        verified: Verified::Always,
        quirk: Quirk::Microsoft,
        ..BASE
    },
    Preset {
        name: "yandex",
        display: "Yandex",
        auth_url: "https://oauth.yandex.com/authorize",
        token_url: "https://oauth.yandex.com/token",
        user_info_url: "https://login.yandex.ru/info",
        scopes: &["login:email", "login:avatar", "login:info"],
        user_name: "/real_name",
        username: "/login",
        email: "/default_email",
        verified: Verified::Always,
        quirk: Quirk::Yandex,
        ..BASE
    },
    Preset {
        name: "facebook",
        display: "Facebook",
        auth_url: "https://www.facebook.com/v3.2/dialog/oauth",
        token_url: "https://graph.facebook.com/v3.2/oauth/access_token",
        user_info_url: "https://graph.facebook.com/me?fields=name,email,picture.type(large)",
        scopes: &["email"],
        email: "/email",
        avatar: "/picture/data/url",
        verified: Verified::Always,
        ..BASE
    },
    Preset {
        name: "instagram2",
        display: "Instagram",
        auth_url: "https://www.instagram.com/oauth/authorize",
        token_url: "https://api.instagram.com/oauth/access_token",
        user_info_url: "https://graph.instagram.com/me?fields=id,username,account_type,user_id,name,profile_picture_url,followers_count,follows_count,media_count",
        scopes: &["instagram_business_basic"],
        id: "/user_id",
        username: "/username",
        avatar: "/profile_picture_url",
        quirk: Quirk::Instagram,
        ..BASE
    },
    Preset {
        name: "github",
        display: "GitHub",
        auth_url: "https://github.com/login/oauth/authorize",
        token_url: "https://github.com/login/oauth/access_token",
        user_info_url: "https://api.github.com/user",
        scopes: &["read:user", "user:email"],
        username: "/login",
        avatar: "/avatar_url",
        quirk: Quirk::Github,
        ..BASE
    },
    Preset {
        name: "gitlab",
        display: "GitLab",
        auth_url: "https://gitlab.com/oauth/authorize",
        token_url: "https://gitlab.com/oauth/token",
        user_info_url: "https://gitlab.com/api/v4/user",
        scopes: &["read_user"],
        username: "/username",
        email: "/email",
        avatar: "/avatar_url",
        verified: Verified::Time("/confirmed_at"),
        ..BASE
    },
    Preset {
        name: "bitbucket",
        display: "Bitbucket",
        auth_url: "https://bitbucket.org/site/oauth2/authorize",
        token_url: "https://bitbucket.org/site/oauth2/access_token",
        user_info_url: "https://api.bitbucket.org/2.0/user",
        scopes: &["account"],
        pkce: false,
        id: "/uuid",
        user_name: "/display_name",
        username: "/username",
        avatar: "/links/avatar/href",
        active: Some(("/account_status", "\"active\"")),
        quirk: Quirk::Bitbucket,
        ..BASE
    },
    Preset {
        name: "gitee",
        display: "Gitee",
        auth_url: "https://gitee.com/oauth/authorize",
        token_url: "https://gitee.com/oauth/token",
        user_info_url: "https://gitee.com/api/v5/user",
        scopes: &["user_info", "emails"],
        username: "/login",
        avatar: "/avatar_url",
        quirk: Quirk::Gitee,
        ..BASE
    },
    Preset {
        name: "gitea",
        display: "Gitea/Forgejo",
        auth_url: "https://gitea.com/login/oauth/authorize",
        token_url: "https://gitea.com/login/oauth/access_token",
        user_info_url: "https://gitea.com/api/v1/user",
        scopes: &["read:user", "user:email"],
        user_name: "/full_name",
        username: "/login",
        avatar: "/avatar_url",
        active: Some(("/active", "true")),
        quirk: Quirk::Gitea,
        ..BASE
    },
    Preset {
        name: "discord",
        display: "Discord",
        auth_url: "https://discord.com/api/oauth2/authorize",
        token_url: "https://discord.com/api/oauth2/token",
        user_info_url: "https://discord.com/api/users/@me",
        scopes: &["identify", "email"],
        user_name: "/global_name",
        username: "/username",
        email: "/email",
        verified: Verified::Flags(&["/verified"]),
        quirk: Quirk::Discord,
        ..BASE
    },
    Preset {
        name: "twitter",
        display: "X/Twitter",
        auth_url: "https://x.com/i/oauth2/authorize",
        token_url: "https://api.x.com/2/oauth2/token",
        user_info_url: "https://api.x.com/2/users/me?user.fields=id,name,username,profile_image_url,confirmed_email",
        scopes: &["users.read", "users.email", "tweet.read"],
        id: "/data/id",
        user_name: "/data/name",
        username: "/data/username",
        email: "/data/confirmed_email",
        avatar: "/data/profile_image_url",
        verified: Verified::Always,
        ..BASE
    },
    Preset {
        name: "kakao",
        display: "Kakao",
        auth_url: "https://kauth.kakao.com/oauth/authorize",
        token_url: "https://kauth.kakao.com/oauth/token",
        user_info_url: "https://kapi.kakao.com/v2/user/me",
        scopes: &["account_email", "profile_nickname", "profile_image"],
        user_name: "",
        username: "/properties/nickname",
        email: "/kakao_account/email",
        avatar: "/properties/profile_image",
        verified: Verified::Flags(&[
            "/kakao_account/is_email_valid",
            "/kakao_account/is_email_verified",
        ]),
        ..BASE
    },
    Preset {
        name: "vk",
        display: "ВКонтакте",
        auth_url: "https://oauth.vk.com/authorize",
        token_url: "https://oauth.vk.com/access_token",
        user_info_url: "https://api.vk.com/method/users.get?fields=photo_max,screen_name&v=5.131",
        scopes: &["email"],
        pkce: false,
        id: "/response/0/id",
        user_name: "",
        username: "/response/0/screen_name",
        avatar: "/response/0/photo_max",
        verified: Verified::Always,
        quirk: Quirk::Vk,
        ..BASE
    },
    Preset {
        name: "linear",
        display: "Linear",
        auth_url: "https://linear.app/oauth/authorize",
        token_url: "https://api.linear.app/oauth/token",
        user_info_url: "https://api.linear.app/graphql",
        scopes: &["read"],
        pkce: false,
        info_post: Some(
            r#"{"query": "query Me { viewer { id displayName name email avatarUrl active } }"}"#,
        ),
        id: "/data/viewer/id",
        user_name: "/data/viewer/name",
        username: "/data/viewer/displayName",
        email: "/data/viewer/email",
        avatar: "/data/viewer/avatarUrl",
        verified: Verified::Always,
        active: Some(("/data/viewer/active", "true")),
        ..BASE
    },
    Preset {
        name: "notion",
        display: "Notion",
        auth_url: "https://api.notion.com/v1/oauth/authorize",
        token_url: "https://api.notion.com/v1/oauth/token",
        user_info_url: "https://api.notion.com/v1/users/me",
        info_headers: &[("Notion-Version", "2022-06-28")],
        id: "/bot/owner/user/id",
        user_name: "/bot/owner/user/name",
        email: "/bot/owner/user/person/email",
        avatar: "/bot/owner/user/avatar_url",
        verified: Verified::Always,
        ..BASE
    },
    Preset {
        name: "monday",
        display: "monday.com",
        auth_url: "https://auth.monday.com/oauth2/authorize",
        token_url: "https://auth.monday.com/oauth2/token",
        user_info_url: "https://api.monday.com/v2",
        scopes: &["me:read"],
        info_post: Some(
            r#"{"query": "query { me { id enabled name email is_verified photo_small }}"}"#,
        ),
        id: "/data/me/id",
        user_name: "/data/me/name",
        email: "/data/me/email",
        avatar: "/data/me/photo_small",
        verified: Verified::Flags(&["/data/me/is_verified"]),
        active: Some(("/data/me/enabled", "true")),
        ..BASE
    },
    Preset {
        name: "lark",
        display: "Lark",
        auth_url: "https://accounts.feishu.cn/open-apis/authen/v1/authorize",
        token_url: "https://open.feishu.cn/open-apis/authen/v2/oauth/token",
        user_info_url: "https://open.feishu.cn/open-apis/authen/v1/user_info",
        id: "/data/union_id",
        user_name: "/data/name",
        avatar: "/data/avatar_url",
        ..BASE
    },
    Preset {
        name: "box",
        display: "Box",
        auth_url: "https://account.box.com/api/oauth2/authorize",
        token_url: "https://api.box.com/oauth2/token",
        user_info_url: "https://api.box.com/2.0/users/me",
        scopes: &["root_readonly"],
        email: "/login",
        avatar: "/avatar_url",
        verified: Verified::Always,
        active: Some(("/status", "\"active\"")),
        ..BASE
    },
    Preset {
        name: "spotify",
        display: "Spotify",
        auth_url: "https://accounts.spotify.com/authorize",
        token_url: "https://accounts.spotify.com/api/token",
        user_info_url: "https://api.spotify.com/v1/me",
        scopes: &["user-read-private"],
        user_name: "/display_name",
        avatar: "/images/0/url",
        ..BASE
    },
    Preset {
        name: "trakt",
        display: "Trakt",
        auth_url: "https://trakt.tv/oauth/authorize",
        token_url: "https://api.trakt.tv/oauth/token",
        user_info_url: "https://api.trakt.tv/users/settings",
        info_headers: &[
            ("Content-Type", "application/json"),
            ("trakt-api-key", "{clientId}"),
            ("trakt-api-version", "2"),
        ],
        id: "/user/ids/uuid",
        user_name: "/user/name",
        username: "/user/username",
        avatar: "/user/images/avatar/full",
        ..BASE
    },
    Preset {
        name: "twitch",
        display: "Twitch",
        auth_url: "https://id.twitch.tv/oauth2/authorize",
        token_url: "https://id.twitch.tv/oauth2/token",
        user_info_url: "https://api.twitch.tv/helix/users",
        scopes: &["user:read:email"],
        info_headers: &[("Client-Id", "{clientId}")],
        id: "/data/0/id",
        user_name: "/data/0/display_name",
        username: "/data/0/login",
        email: "/data/0/email",
        avatar: "/data/0/profile_image_url",
        verified: Verified::Always,
        ..BASE
    },
    Preset {
        name: "patreon",
        display: "Patreon",
        auth_url: "https://www.patreon.com/oauth2/authorize",
        token_url: "https://www.patreon.com/api/oauth2/token",
        user_info_url: "https://www.patreon.com/api/oauth2/v2/identity?fields%5Buser%5D=full_name,email,vanity,image_url,is_email_verified",
        scopes: &["identity", "identity[email]"],
        id: "/data/id",
        user_name: "/data/attributes/full_name",
        username: "/data/attributes/vanity",
        email: "/data/attributes/email",
        avatar: "/data/attributes/image_url",
        verified: Verified::Flags(&["/data/attributes/is_email_verified"]),
        ..BASE
    },
    Preset {
        name: "strava",
        display: "Strava",
        auth_url: "https://www.strava.com/oauth/authorize",
        token_url: "https://www.strava.com/api/v3/oauth/token",
        user_info_url: "https://www.strava.com/api/v3/athlete",
        scopes: &["profile:read_all"],
        user_name: "",
        username: "/username",
        avatar: "/profile",
        quirk: Quirk::Strava,
        ..BASE
    },
    Preset {
        name: "wakatime",
        display: "WakaTime",
        auth_url: "https://wakatime.com/oauth/authorize",
        token_url: "https://wakatime.com/oauth/token",
        user_info_url: "https://wakatime.com/api/v1/users/current",
        scopes: &["email"],
        id: "/data/id",
        user_name: "/data/display_name",
        username: "/data/username",
        email: "/data/email",
        avatar: "/data/photo",
        verified: Verified::Flags(&["/data/is_email_confirmed"]),
        quirk: Quirk::Wakatime,
        ..BASE
    },
    Preset {
        name: "livechat",
        display: "LiveChat",
        auth_url: "https://accounts.livechat.com/",
        token_url: "https://accounts.livechat.com/token",
        user_info_url: "https://accounts.livechat.com/v2/accounts/me",
        id: "/account_id",
        email: "/email",
        avatar: "/avatar_url",
        verified: Verified::Flags(&["/email_verified"]),
        ..BASE
    },
    Preset {
        name: "mailcow",
        display: "mailcow",
        scopes: &["profile"],
        user_name: "/full_name",
        username: "/username",
        email: "/email",
        verified: Verified::Always,
        active: Some(("/active", "1")),
        quirk: Quirk::Mailcow,
        ..BASE
    },
    Preset {
        name: "planningcenter",
        display: "Planning Center",
        auth_url: "https://api.planningcenteronline.com/oauth/authorize",
        token_url: "https://api.planningcenteronline.com/oauth/token",
        user_info_url: "https://api.planningcenteronline.com/people/v2/me",
        scopes: &["people"],
        id: "/data/id",
        user_name: "/data/attributes/name",
        avatar: "/data/attributes/avatar",
        active: Some(("/data/attributes/status", "\"active\"")),
        ..BASE
    },
    OIDC,
    Preset {
        name: "oidc2",
        ..OIDC
    },
    Preset {
        name: "oidc3",
        ..OIDC
    },
];

/// The preset of this name.
pub fn preset(name: &str) -> Option<&'static Preset> {
    PRESETS.iter().find(|p| p.name == name)
}

/// The `GET /api/collections/meta/oauth2-providers` answer (name, display
/// name, inline SVG logo).
pub const PROVIDERS_LIST: &str = include_str!("oauth2_providers.json");

/// The provider's logo (inline SVG) from that list, as auth-methods
/// embeds it; empty for a name it doesn't list.
pub fn logo(name: &str) -> &'static str {
    use std::collections::HashMap;
    use std::sync::OnceLock;
    static LOGOS: OnceLock<HashMap<String, String>> = OnceLock::new();
    LOGOS
        .get_or_init(|| {
            let list: Vec<serde_json::Value> =
                serde_json::from_str(PROVIDERS_LIST).unwrap_or_default();
            list.iter()
                .filter_map(|p| {
                    Some((
                        p["name"].as_str()?.to_string(),
                        p["logo"].as_str()?.to_string(),
                    ))
                })
                .collect()
        })
        .get(name)
        .map(String::as_str)
        .unwrap_or("")
}
