from unistack.cli import main

main()
