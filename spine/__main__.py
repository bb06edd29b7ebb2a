from spine.app.cli import main

main()
