from a3c.cli import main

main()
