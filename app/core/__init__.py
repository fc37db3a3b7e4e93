"""Qt-free service layer. Nothing below this package may import Qt, qasync or app.ui."""
