"""Built-in message templates for send_notification and send_email (subject, body), rendered with
the action's template context. A rule may instead give its own ``subject`` and ``body``."""

from __future__ import annotations

MESSAGE_TEMPLATES: dict[str, tuple[str, str]] = {
    "project_created": ("New project assigned: {{entity.name}}", "New project assigned: {{entity.name}}"),
    "task_assigned": ("Task assigned: {{entity.name}}", "You have been assigned the task {{entity.name}}."),
    "task_completed": ("Task completed: {{entity.name}}", "The task {{entity.name}} is now {{entity.status}}."),
    "order_confirmation": (
        "Your order is confirmed",
        "Hello {{customer.name}},\n\nyour order for {{entity.name}} is confirmed.\n",
    ),
    "welcome_email": ("Welcome, {{entity.name}}", "Hello {{entity.name}}, welcome aboard."),
    "status_changed": (
        "{{entity.entity_type}} {{entity.name}} is now {{entity.status}}",
        "{{entity.entity_type}} {{entity.name}} changed from {{old.status}} to {{entity.status}}.",
    ),
}
