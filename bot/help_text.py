"""What the bot says about itself: ``/help`` (private chats and groups) and ``/start``."""

from __future__ import annotations

HELP = """I describe satellite and aerial images, answer questions about them and find images.

• Send a photo: I describe the scene. Add a caption to ask about it ("how many planes?").
• Send an image as a file: JPEG, PNG, WebP or (Geo)TIFF, also 16-bit or multispectral.
• Send several photos at once: one question about all of them.
• Ask follow-ups: "is there a river?", "what is left of the runway?"
• Ask for images: "show me airports near the sea" or /search harbour with many boats
• /more: the next results of the last search, without repeats.
• Every image you send joins your own gallery, searchable only by you (in a group: by that
  group): /search mine harbour looks among your images only.
• Reply "more like this" (or /similar) to an image: similar images from the gallery.
• Send a large scene as a file: described as a whole and by tiles; /tiles shows the grid.
• A GeoTIFF's location (centre, size, CRS, date) comes from its tags; photos have none.

/reset new conversation · /history what we said · /export your data · /forget delete all
about you · /about the model"""

HELP_GROUP = """I describe satellite and aerial images, answer questions about them and find images.
In this group I answer only messages meant for me:

• Mention me (@{bot}) in a message or in a photo's caption: "@{bot} what is this?"
• Reply to one of my messages to ask a follow-up.
• Commands: /search@{bot} harbour with boats, /more, /similar (in reply to an image).

This group has its own memory (each topic of a forum has its own), shared by everyone here;
images sent here are searched only here. /reset new conversation · /history what was said ·
/about the model · for the group's administrators: /export this group's data, /forget delete it"""

START = "Hello! Send me a satellite or aerial image, or ask for images by text.\n\n" + HELP
