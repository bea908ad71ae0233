from integration.cli.main import main

main()
