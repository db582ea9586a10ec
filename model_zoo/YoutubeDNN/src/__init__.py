from .YoutubeDNN import YoutubeDNN

__all__ = ["YoutubeDNN"]
