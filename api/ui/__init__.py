"""The console people work in, served by the API under /ui: server-rendered pages (Jinja templates with
autoescaping; no front-end build), signed in with an API key kept in an HttpOnly, SameSite=Strict
cookie, every form carrying a CSRF token. Every action goes through the same code as the API."""
