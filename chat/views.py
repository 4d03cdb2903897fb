"""The chat page: a signed-in user's room, history and send box, over the chat protocol."""

from django.contrib.auth.decorators import login_required
from django.shortcuts import render


@login_required
def chat_page(request):
    return render(request, "chat/chat.html", {"room": request.GET.get("room", "lobby")})
