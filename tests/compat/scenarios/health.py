SCENARIOS = [
    {
        "id": "health",
        "title": "health endpoint for guest and superuser; unknown API route",
        "steps": [
            {"name": "health as guest", "method": "GET", "path": "/api/health", "auth": "guest", "expect": 200},
            {"name": "health as superuser", "method": "GET", "path": "/api/health", "expect": 200},
            {"name": "HEAD health", "method": "HEAD", "path": "/api/health", "auth": "guest"},
            {"name": "unknown api route", "method": "GET", "path": "/api/nope", "auth": "guest"},
            {"name": "unknown api route as superuser", "method": "GET", "path": "/api/nope"},
            {"name": "wrong method on collections", "method": "PUT", "path": "/api/collections"},
        ],
    },
]
