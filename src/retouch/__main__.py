from retouch.cli import app

app(prog_name="retouch")
